"""vt-quantize: precision and quantization of model directories (fp32/bf16/fp16, int8, int4, GPTQ)."""
