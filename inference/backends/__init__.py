"""Model backends of the chat engine: the interface and sampling settings (``base``), transformers+peft
(``hf``) and vLLM (``vllm``). They turn a prompt into text; ``inference/chat_engine.py`` turns a
request into a reply."""
