# liandan: `make train` trains MobileNetV2 on CIFAR-10, `make test` runs the whole test
# suite, `make doctor` checks the adapter.
# Both install a Vulkan driver first when none is present (see scripts/ensure-vulkan.sh).

CARGO ?= cargo
# Mesa's Vulkan loader warns when this is unset; any private directory will do.
export XDG_RUNTIME_DIR ?= /tmp/liandan-runtime-$(shell id -u)

.PHONY: train test doctor bench bench-train gpu-check lint vulkan mpi train-dist test-dist

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

# Data-parallel training over Open MPI (installed when missing: scripts/ensure-mpi.sh).
# `make train-dist` is a 2-rank smoke run on a CIFAR-10 subset (docs/distributed.md);
# `make test-dist` the MPI tests. The threaded ranks' tests are in `make test`.
MPIRUN ?= mpirun --oversubscribe $(if $(filter 0,$(shell id -u)),--allow-run-as-root,)
DIST_RANKS ?= 2
DIST_ARGS ?= --limit-train 2000 --limit-test 1000 --epochs 2 --batch-size 64 --lr 0.03 --out runs/dist

mpi:
	@bash scripts/ensure-mpi.sh

train-dist: vulkan mpi
	$(CARGO) build --release --features mpi --example train_cifar
	$(MPIRUN) -np $(DIST_RANKS) target/release/examples/train_cifar --distributed $(DIST_ARGS)

# The dev profile, as `make test`'s: CI runs both, and the deps built for one serve both.
test-dist: vulkan mpi
	$(CARGO) build --features mpi --example dist_check
	bash scripts/test-dist.sh

lint:
	$(CARGO) fmt --check
	$(CARGO) clippy --all-targets -- -D warnings
