"""The version of clinit (one place, imported by everything that shows it)."""

VERSION = "0.4.0"
