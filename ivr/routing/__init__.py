"""The sans-I/O routing core: rules → classify → decide. No Flask, no DB, no network."""
