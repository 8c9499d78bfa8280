"""Fake network services the tests start on 127.0.0.1 (never mocks of client libraries)."""
