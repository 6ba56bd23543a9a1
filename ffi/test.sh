#!/usr/bin/env bash
# Tests of the C ABI, from the repository root or anywhere:
#   bash ffi/test.sh
#
# 1. the committed include/usagetap.h equals a fresh generation by the pinned cbindgen;
# 2. the Rust tests of the exports (unit tests in ffi/src/tests.rs);
# 3. ffi/tests/test.c (-Wall -Wextra -Wpedantic -Werror) on real corpus exchanges fed in
#    1..7-byte pieces, chargeback on corpus data (APIM envelopes, one cut; the include_usage
#    rewrite; the usage-chunk filter) and every misuse case, against the shared library under
#    valgrind memcheck (zero errors, zero leaks) and under ASan + UBSan, and against the static
#    library;
# 4. examples/c/meter.c on a recorded stream;
# 5. examples/csharp/UsagetapHost.cs compiled with mcs and run with mono.
#
# It installs what it needs when missing (Debian, as root): gcc, valgrind, mono-mcs,
# mono-runtime, python3, and cbindgen $CBINDGEN_VERSION into target/tools.
set -euo pipefail

CBINDGEN_VERSION=0.29.2

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
CORPUS=${USAGETAP_CORPUS:-$ROOT/../shared/corpus/dev.jsonl}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

step() { printf '\n== %s\n' "$*"; }

# ---- tools ------------------------------------------------------------------------------------
missing=()
command -v gcc >/dev/null || missing+=(gcc libc6-dev)
command -v valgrind >/dev/null || missing+=(valgrind)
command -v mcs >/dev/null || missing+=(mono-mcs)
command -v mono >/dev/null || missing+=(mono-runtime)
command -v python3 >/dev/null || missing+=(python3)
if ((${#missing[@]})); then
    step "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi

CBINDGEN=$TARGET_DIR/tools/bin/cbindgen
if ! "$CBINDGEN" --version 2>/dev/null | grep -qx "cbindgen $CBINDGEN_VERSION"; then
    step "installing cbindgen $CBINDGEN_VERSION into $TARGET_DIR/tools"
    cargo install cbindgen --version "$CBINDGEN_VERSION" --locked --root "$TARGET_DIR/tools" --quiet
fi

# ---- 1. header drift --------------------------------------------------------------------------
step "include/usagetap.h against cbindgen $CBINDGEN_VERSION"
"$CBINDGEN" --quiet --config ffi/cbindgen.toml --crate usagetap-ffi --output "$WORK/usagetap.h" ffi
if ! cmp -s "$WORK/usagetap.h" include/usagetap.h; then
    diff -u include/usagetap.h "$WORK/usagetap.h" | head -60 || true
    echo "include/usagetap.h is stale: regenerate it with" >&2
    echo "  $CBINDGEN --config ffi/cbindgen.toml --crate usagetap-ffi --output include/usagetap.h ffi" >&2
    exit 1
fi
echo "header up to date"

# ---- 2. Rust tests ----------------------------------------------------------------------------
step "cargo build / test -p usagetap-ffi"
cargo build -p usagetap-ffi --quiet
cargo test -p usagetap-ffi --quiet

LIB=$TARGET_DIR/debug
VERSION=$(sed -n 's/^#define USAGETAP_VERSION "\(.*\)"$/\1/p' include/usagetap.h)
# The shared library's SONAME is its exact version (ffi/README.md): give the linker and the
# loader the names an install would.
mkdir -p "$WORK/lib"
ln -s "$LIB/libusagetap.so" "$WORK/lib/libusagetap.so.$VERSION"
ln -s "$LIB/libusagetap.so" "$WORK/lib/libusagetap.so"
CFLAGS=(-std=c11 -Wall -Wextra -Wpedantic -Werror -g -Iinclude)

# ---- 3. C test --------------------------------------------------------------------------------
step "C test (ffi/tests/test.c) on corpus exchanges, under valgrind"
python3 ffi/tests/corpus_cases.py "$CORPUS" "$WORK/cases.txt" "$WORK/apim.jsonl" "$WORK/chargeback.txt"
gcc "${CFLAGS[@]}" ffi/tests/test.c -o "$WORK/test" -L"$WORK/lib" -lusagetap -Wl,-rpath,"$WORK/lib"
gcc "${CFLAGS[@]}" ffi/tests/test.c -o "$WORK/test-static" "$LIB/libusagetap.a" \
    -lgcc_s -lutil -lrt -lpthread -lm -ldl -lc
VALGRIND=(valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect,possible
          --suppressions=ffi/tests/valgrind.supp --error-exitcode=1)

"$WORK/test-static" "$WORK/cases.txt" "$WORK/chargeback.txt" >"$WORK/static.out" 2>&1 || { cat "$WORK/static.out"; exit 1; }
echo "static library: $(tail -1 "$WORK/static.out")"

# AddressSanitizer + UBSan on the C side (and LeakSanitizer at exit), against the shared library.
gcc "${CFLAGS[@]}" -fsanitize=address,undefined -fno-sanitize-recover=all ffi/tests/test.c \
    -o "$WORK/test-asan" -L"$WORK/lib" -lusagetap -Wl,-rpath,"$WORK/lib"
# ASan from gcc 12 can crash at random on kernels with vm.mmap_rnd_bits=32; without address
# randomisation (setarch -R, when the kernel allows it) it cannot.
norand=()
if setarch "$(uname -m)" -R true 2>/dev/null; then norand=(setarch "$(uname -m)" -R); fi
"${norand[@]}" "$WORK/test-asan" "$WORK/cases.txt" "$WORK/chargeback.txt" >"$WORK/asan.out" 2>&1 ||
    { cat "$WORK/asan.out"; exit 1; }
echo "ASan + UBSan: $(tail -1 "$WORK/asan.out")"

# A meter left unfreed must fail the leak check, or the check below proves nothing.
if "${VALGRIND[@]}" "$WORK/test" --leak-one-meter >"$WORK/leak.out" 2>&1; then
    cat "$WORK/leak.out"
    echo "valgrind did not report a leaked meter" >&2
    exit 1
fi
grep -q "definitely lost" "$WORK/leak.out"
echo "valgrind catches a leaked meter: ok"

"${VALGRIND[@]}" "$WORK/test" "$WORK/cases.txt" "$WORK/chargeback.txt" 2>&1 | tee "$WORK/c.out" | tail -3
echo "valgrind: zero errors, zero leaks"

# ---- 4. the C example -------------------------------------------------------------------------
step "examples/c/meter.c"
gcc "${CFLAGS[@]}" examples/c/meter.c -o "$WORK/meter" -L"$WORK/lib" -lusagetap -Wl,-rpath,"$WORK/lib"
python3 - "$WORK/cases.txt" "$WORK/stream.sse" "$WORK/request.json" "$WORK/expected" <<'EOF'
import sys
src, sse, req, exp = sys.argv[1:]
with open(src, "rb") as f:
    while True:
        head = f.readline().split()
        if not head:
            sys.exit("no stream with usage in the cases")
        n_req, n_resp = int(head[6]), int(head[7])
        request, response = f.read(n_req), f.read(n_resp)
        f.read(1)
        if head[2] == b"1" and int(head[3]) >= 0:
            open(sse, "wb").write(response)
            open(req, "wb").write(request)
            open(exp, "w").write('"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d'
                                 % (int(head[3]), int(head[4]), int(head[5])))
            break
EOF
"$WORK/meter" "$WORK/stream.sse" "$WORK/request.json" >"$WORK/meter.out"
grep -qF "$(cat "$WORK/expected")" "$WORK/meter.out" || { cat "$WORK/meter.out"; exit 1; }
echo "meter example: $(cat "$WORK/expected")"

# ---- 5. C# host -------------------------------------------------------------------------------
step "C# host (examples/csharp/UsagetapHost.cs) with mcs + mono"
mcs -nologo -out:"$WORK/UsagetapHost.exe" examples/csharp/UsagetapHost.cs
LD_LIBRARY_PATH="$WORK/lib" mono "$WORK/UsagetapHost.exe" "$WORK/cases.txt" "$WORK/apim.jsonl" \
    "$WORK/chargeback.txt" | tee "$WORK/cs.out" | tail -2

# ---- summary ----------------------------------------------------------------------------------
c=$(tail -1 "$WORK/c.out")
cs=$(tail -1 "$WORK/cs.out" | sed 's/^csharp: //')
read -r cp _ cf _ <<<"$c"
read -r sp _ sf _ <<<"$cs"
echo
echo "ffi: $((cp + sp)) passed, $((cf + sf)) failed"
