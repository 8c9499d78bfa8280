"""Development tools shared by the tests and the benchmarks (fake network services)."""
