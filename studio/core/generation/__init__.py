"""What a generation is made of: the request and its fields, samplers, settings, prompt syntax
and schedules, LoRA tags, the CLIP tokenizer that counts tokens."""
