"""Code-quality harness: HumanEval, MBPP and practical scenarios, with sandboxed execution."""
