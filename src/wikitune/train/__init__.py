"""Training stages: LoRA continued pre-training (`cpt`), supervised fine-tuning (`sft`), merge."""
