#!/usr/bin/env python3
"""PEFT interop for LoRA adapter folders, driven by tests/interop/test_peft_adapter.cpp.

  check_peft_adapter.py verify ADAPTER_DIR BASE_DIR EXPECTED_MERGED.safetensors
      PEFT loads our adapter onto the transformers model; merge_and_unload() must give exactly the
      merged weights we computed (W + scale * B @ A) for every targeted linear.
  check_peft_adapter.py make OUT_DIR BASE_DIR
      PEFT saves an adapter (r=4, alpha=8, q_proj+v_proj, nonzero B) for us to read.
"""
import os
import sys

os.environ.setdefault("TORCHDYNAMO_DISABLE", "1")

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM


def verify(adapter_dir, base_dir, expected_path):
    expected = load_file(expected_path)
    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    model = PeftModel.from_pretrained(model, adapter_dir)
    merged = model.merge_and_unload().state_dict()
    checked = 0
    for name, want in expected.items():
        got = merged[name]
        if not torch.allclose(got, want, atol=1e-6, rtol=1e-6):
            sys.exit(f"{name}: PEFT merge differs from ours by {(got - want).abs().max().item()}")
        checked += 1
    print(f"PEFT loaded the adapter and merged {checked} weights equal to ours")


def make(out_dir, base_dir):
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    config = LoraConfig(r=4, lora_alpha=8, lora_dropout=0.1, target_modules=["q_proj", "v_proj"],
                        task_type="CAUSAL_LM")
    model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.02)
    model.save_pretrained(out_dir)
    print("saved", out_dir)


if __name__ == "__main__":
    if sys.argv[1] == "verify":
        verify(*sys.argv[2:5])
    elif sys.argv[1] == "make":
        make(*sys.argv[2:4])
    else:
        sys.exit(__doc__)
