"""HTTP routes: one Blueprint per resource. Routes parse, call and answer."""
