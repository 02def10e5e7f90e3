"""`make bench`: how fast the handlers are against the least work their job needs, measured on
this machine in one run, and written to docs/benchmarks.md. See that document for the method.

- `cold`: cold start per function (fresh interpreters, moto server) against boto3 + its clients.
- `warm`: warm request per route (in process, Stubber) against the inline floor.
- `throughput`: the emulator against the local mode, with an exact count of what was stored.
- `size`: the built layer and functions, zipped and unzipped."""
