"""Transport between the processes of a data-parallel run: MPI, or a size-1 no-op."""
