"""LLM mining: windows, prompts and schemas, the Ollama client wrapper, the adaptive pool,
quote timestamps and export. The stages live in ytpiped.stages.mine / .evaluate."""
