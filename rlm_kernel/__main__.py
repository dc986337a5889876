"""``python -m rlm_kernel -f CONNECTION_FILE``: start the RLM kernel (what the kernelspec runs)."""

from ipykernel.kernelapp import IPKernelApp

from .kernel import RLMKernel

if __name__ == "__main__":
    IPKernelApp.launch_instance(kernel_class=RLMKernel)
