# The appliance's build. `make run` serves; `make test` passes the tests. Both install what they need.
SHELL := /bin/bash
CONFIG ?= Release
DOTNET ?= dotnet
APPLIANCE := server/Appliance.Server/bin/$(CONFIG)/net10.0/appliance.dll
export DOTNET_CLI_TELEMETRY_OPTOUT := 1
export DOTNET_NOLOGO := 1

.PHONY: all build restore run test check bench soak fuzz publish format-check peers clean sdk image image-test

all: build

sdk:
	@command -v $(DOTNET) >/dev/null || { echo "make: the .NET 10 SDK (dotnet) is not installed. Install it: https://learn.microsoft.com/dotnet/core/install/linux-debian"; exit 1; }

restore: sdk
	$(DOTNET) restore Appliance.sln --verbosity quiet

build: restore
	$(DOTNET) build Appliance.sln -c $(CONFIG) --no-restore --nologo -v quiet -clp:NoSummary

## run: serve the embedded default (NTP on 127.0.0.1:11123 and [::1]:11123, metrics on 127.0.0.1:9975).
##      Pass arguments with ARGS, e.g. make run ARGS="--config my.yaml"
run: sdk
	$(DOTNET) build server/Appliance.Server -c $(CONFIG) --nologo -v quiet -clp:NoSummary
	$(DOTNET) $(APPLIANCE) serve $(ARGS)

## peers: install the real peers the tests use (apt: chrony, ntpsec-ntpdig, ...; NTPsec's ntpq extracted)
peers:
	tests/peers/install.sh

# The image test boots `make image` under emulation: `make image-test` runs it, not `make test`.
TEST_PROJECTS := $(sort $(filter-out tests/Appliance.Image.Tests/%,$(wildcard tests/*.Tests/*.csproj))) tests/Appliance.Simulation/Appliance.Simulation.csproj

# The tests that run the real executable (real peers, the CLI, the control socket, systemd's protocol):
# run a second time against the Native AOT binary that `make publish` makes and the image ships.
AOT_TEST_CLASSES := RealClientTests NtsRealClientTests ReloadTests PtpTests CliTests ControlTests ControlActionTests \
  SystemdProcessTests MigrationCliTests ConfigValidateCliTests MigrationRealConfigTests PrivilegeDropTests \
  BackgroundPriorityTests
AOT_FILTER := $(subst $() ,|,$(foreach c,$(AOT_TEST_CLASSES),FullyQualifiedName~.$(c).))

## test: every test project, one after the other (they share two cores), then the real-executable tests
##       again against the Native AOT binary; TRX results in out/test-results
test: peers build publish
	rm -rf out/test-results
	@set -o pipefail; rc=0; for p in $(TEST_PROJECTS); do \
	  n=$$(basename $$p .csproj); echo "== $$n"; \
	  $(DOTNET) test $$p -c $(CONFIG) --no-build --nologo --logger "trx;LogFileName=$$n.trx" \
	    --logger "console;verbosity=normal" --results-directory out/test-results | grep -vE '^\s+Passed |^$$' || rc=1; \
	done; \
	echo "== Appliance.Server.Tests against the Native AOT binary (out/bin/appliance)"; \
	APPLIANCE_BINARY=$(CURDIR)/out/bin/appliance $(DOTNET) test tests/Appliance.Server.Tests -c $(CONFIG) --no-build --nologo \
	  --filter "$(AOT_FILTER)" --logger "trx;LogFileName=Appliance.Server.Tests.aot.trx" \
	  --logger "console;verbosity=normal" --results-directory out/test-results | grep -vE '^\s+Passed |^$$' || rc=1; \
	echo "== the benchmark scripts' Python tests (tests/Appliance.Benchmarks/test_*.py)"; \
	/usr/bin/python3 -B -m pytest -q -p no:cacheprovider tests/Appliance.Benchmarks/test_*.py \
	  --junitxml=out/test-results/benchmark-scripts.junit.xml || rc=1; \
	exit $$rc

## check: the simulation tier over many seeds (SIM_SEEDS, default 100), one line per seed and scenario
SIM_SEEDS ?= 100
check: build
	SIM_SEEDS=$(SIM_SEEDS) $(DOTNET) test tests/Appliance.Simulation -c $(CONFIG) --no-build --nologo \
	  --logger "console;verbosity=detailed"

## bench: BenchmarkDotNet suites; results to docs/benchmarks.md
bench: build publish
	tests/Appliance.Benchmarks/bench.sh

## soak: the Native AOT appliance at half its capacity for SOAK_MINUTES (default 60), plain NTP and NTS,
##       NTS-KE handshakes and key rotations meanwhile; fails unless RSS stays flat, the workers allocate
##       0 B, no NAK, no worker restart. Results in out/soak; SOAK_UPDATE_DOCS=1 puts them in docs/benchmarks.md
soak: build publish
	tests/Appliance.Benchmarks/soak.sh

## fuzz: every fuzz target under afl++ (SharpFuzz), FUZZ_EXECS (default 10 M) executions or FUZZ_SECONDS each,
##       FUZZ_TARGETS to choose; minimises the corpus into tests/testdata/fuzz, figures in docs/fuzzing.md
fuzz: sdk
	tests/Appliance.Fuzz/fuzz.sh

## publish: the Native AOT `appliance` executable at out/bin/appliance (symbols beside it in appliance.dbg)
publish: restore
	@command -v cc >/dev/null || { echo "make: Native AOT links with the system's C toolchain: installing gcc"; apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends gcc libc6-dev >/dev/null; }
	$(DOTNET) publish server/Appliance.Server -c Release -r linux-x64 -o out/bin --nologo -v quiet -clp:NoSummary
	rm -f out/bin/*.pdb
	@echo "out/bin/appliance: $$(du -h out/bin/appliance | cut -f1), $$(out/bin/appliance --version)"

## image: the bootable Debian 12 image, out/image/appliance.img + vmlinuz + initrd.img (docs/deploying.md);
##        the debootstrap tree is cached under out/image-cache (first build ~5-10 min, then ~1 min)
image: publish
	appliance-image/image/build.sh

## image-test: boots the image under QEMU (TCG) and checks it from the host and from inside; TRX in out/test-results
image-test: image peers
	@command -v qemu-system-x86_64 >/dev/null && command -v debugfs >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends qemu-system-x86 qemu-utils e2fsprogs >/dev/null; }
	$(DOTNET) build tests/Appliance.Image.Tests -c $(CONFIG) --nologo -v quiet -clp:NoSummary
	$(DOTNET) test tests/Appliance.Image.Tests -c $(CONFIG) --no-build --nologo --logger "trx;LogFileName=Appliance.Image.Tests.trx" \
	  --logger "console;verbosity=normal" --results-directory out/test-results

format-check: restore
	$(DOTNET) format Appliance.sln --verify-no-changes --no-restore

clean:
	rm -rf out
	$(DOTNET) clean Appliance.sln -v quiet
