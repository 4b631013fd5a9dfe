"""What the CLI and the API both do: start and read runs, steer them, estimate, export."""
