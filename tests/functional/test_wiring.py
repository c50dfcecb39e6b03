"""The composition root: every cached factory is a registered component, and reset() forgets them all."""

from __future__ import annotations

import ast
import inspect

from chalicelib import wiring


def _cached_factories() -> dict[str, object]:
    return {
        name: value
        for name, value in vars(wiring).items()
        if callable(getattr(value, "cache_clear", None)) and getattr(value, "__module__", None) == wiring.__name__
    }


def test_every_cached_factory_in_wiring_is_a_registered_component() -> None:
    cached = _cached_factories()
    assert len(cached) >= 20  # the introspection sees the factories (not an empty match)
    assert set(cached.values()) == set(wiring.components())


def test_wiring_caches_nothing_but_through_component() -> None:
    """A bare functools.cache would be invisible to reset(): the module must not use one."""
    tree = ast.parse(inspect.getsource(wiring))
    functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
    decorators = [ast.unparse(d) for node in functions for d in node.decorator_list]
    assert decorators and set(decorators) == {"component"}


def test_reset_forgets_every_component(aws: None) -> None:
    built = [factory() for factory in wiring.components()]
    assert all(factory.cache_info().currsize == 1 for factory in wiring.components())
    wiring.reset()
    assert all(factory.cache_info().currsize == 0 for factory in wiring.components())
    assert wiring.devices() is not built[[f.__name__ for f in wiring.components()].index("devices")]


def test_wiring_imports_nothing_from_the_api_or_the_dashboard() -> None:
    tree = ast.parse(inspect.getsource(wiring))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not {m for m in imported if m.startswith(("chalicelib.api", "chalicelib.web"))}


def test_every_event_handler_in_app_is_one_call_into_a_job() -> None:
    """Handlers hold no logic: each body is one statement calling what wiring builds."""
    import app

    tree = ast.parse(inspect.getsource(app))
    handlers = [
        node
        for node in tree.body
        if isinstance(node, ast.FunctionDef)
        and any("middleware" not in ast.unparse(d) for d in node.decorator_list)
        and node.decorator_list
    ]
    assert len(handlers) >= 10
    for handler in handlers:
        assert len(handler.body) == 1, handler.name
        calls = [ast.unparse(n.func) for n in ast.walk(handler.body[0]) if isinstance(n, ast.Call)]
        # The Function URL door hands its HTTP event to the app's own routes, not to a job.
        assert any(c.startswith("wiring.") for c in calls) or calls == ["function_url.handle"], handler.name
