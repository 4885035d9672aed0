"""plugin-text: text classification components for the kernel (see plugin_text.plugin for the list)."""
