"""Contract suites: one set of tests that every implementation of a protocol must pass.

A suite is a class whose name does not start with "Test" (so pytest does not collect it here);
a test module subclasses it as `Test...` and provides the fixture that builds the implementation.
The pure implementations run in tests/unit, the ones over moto in tests/functional."""
