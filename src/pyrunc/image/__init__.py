"""Image tools (issue 12): reading OCI image layouts and unpacking them into bundles."""
