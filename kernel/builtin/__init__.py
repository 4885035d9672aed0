"""The kernel's own generic, domain-free components, registered through the same hooks as any plugin."""
