"""Training stages (pretrain, sft, distill, grpo) and what they share: checkpoints, cost ledger, hardware table."""
