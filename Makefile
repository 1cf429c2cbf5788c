# liandan: `make train` trains MobileNetV2 on CIFAR-10, `make test` runs the whole test
# suite, `make doctor` checks the adapter.
# Both install a Vulkan driver first when none is present (see scripts/ensure-vulkan.sh).

CARGO ?= cargo
# Mesa's Vulkan loader warns when this is unset; any private directory will do.
export XDG_RUNTIME_DIR ?= /tmp/liandan-runtime-$(shell id -u)

.PHONY: train test doctor bench bench-train gpu-check lint vulkan

vulkan:
	@mkdir -p -m 700 $(XDG_RUNTIME_DIR)
	@bash scripts/ensure-vulkan.sh

# Unit tests, the kernel tests (kernels-tests/), examples and benches built and run once.
test: vulkan
	$(CARGO) test --all-targets
	$(CARGO) test --doc

# The default recipe (SGD 0.1, momentum 0.9, wd 5e-4, cosine, batch 128, label smoothing
# 0.1); pass more flags with TRAIN_ARGS="--epochs 4 --limit-train 2000".
train: vulkan
	$(CARGO) run --release --example train_cifar -- $(TRAIN_ARGS)

doctor: vulkan
	$(CARGO) run --release --example doctor

bench: vulkan
	$(CARGO) bench --bench kernels

# The MobileNetV2-CIFAR training step and evaluation in images/s, a per-op breakdown,
# and PyTorch on the same net when it is importable.
bench-train: vulkan
	$(CARGO) run --release --example bench_train -- $(BENCH_ARGS)

# Everything to run on a machine with a GPU, into gpu-check-results.txt (see the script).
gpu-check: vulkan
	bash scripts/gpu-check.sh $(GPU_CHECK_ARGS)

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
