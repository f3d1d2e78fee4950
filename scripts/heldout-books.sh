#!/usr/bin/env bash
# Held-out evaluation books (../shared/EVAL.md, "Model quality"): public-domain books in neither
# split of ../shared/corpus (its README lists them among the books it excluded for evaluation),
# fetched from Debian's archive by pinned URL and sha256, decoded, checked against pinned text
# hashes, written as a small corpus directory (MANIFEST.tsv + books/NNNN-slug.txt.zst) and
# tokenized with `memmamba-train encode` into the token stream that `memmamba-train eval` reads.
#
#   scripts/heldout-books.sh [OUT_DIR]        (default .device-eval, git-ignored)
#
# Writes OUT_DIR/heldout.tokens and OUT_DIR/heldout.books.json (about 4 MB, small enough to
# carry to a GPU host without internet) and keeps the downloads in OUT_DIR/cache.
# The books:
#   - Pride and Prejudice, Persuasion, Sense and Sensibility, Northanger Abbey (Jane Austen),
#     from Debian's r-cran-janeaustenr (the texts of Project Gutenberg #1342, #105, #161, #121),
#     stored as R character vectors: decoded here with a small reader of R's serialization;
#   - the King James Bible, from Debian's bible-kjv-text, printed whole by bible-kjv's `bible`.
# None of them is in the corpus: it excluded P&P, Persuasion and the KJV for evaluation, and
# has no Sense and Sensibility or Northanger Abbey. Checked against all 473 corpus books by
# 8-word shingles: each Austen novel shares 76-182 shingles with the corpus (stock phrases and
# quotations, under 0.2% of its text), the KJV 8,103 (about 1%: Bible verses quoted in corpus
# books); no opening sentence of any of them occurs in the corpus.
# Needs: curl, sha256sum, dpkg-deb, python3, zstd, and cargo (or MEMMAMBA_TRAIN set to a built
# memmamba-train binary). The `bible` program is an amd64 Linux binary.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(realpath -m "${1:-$ROOT/.device-eval}")
CACHE="$OUT/cache"
CORPUS="$OUT/heldout-corpus"
TOKENIZER="${TOKENIZER:-$ROOT/assets/tokenizer.json}"
POOL=http://deb.debian.org/debian/pool/main

mkdir -p "$CACHE" "$CORPUS/books"

fetch() { # url sha256
    local file="$CACHE/$(basename "$1")"
    if [ ! -f "$file" ] || ! echo "$2  $file" | sha256sum -c --status; then
        curl -fsSL --retry 3 -o "$file.part" "$1"
        mv "$file.part" "$file"
    fi
    echo "$2  $file" | sha256sum -c --quiet || { echo "checksum mismatch: $file" >&2; exit 1; }
    echo "$file"
}

AUSTEN=$(fetch "$POOL/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb" \
    df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95)
KJV_TEXT=$(fetch "$POOL/b/bible-kjv/bible-kjv-text_4.38_all.deb" \
    d61b6aad4c51ba9e2800b825325fa6a09e99a0d02a9bb6dc4724fcc4995a1b7a)
KJV_PROG=$(fetch "$POOL/b/bible-kjv/bible-kjv_4.38_amd64.deb" \
    75a49c032a6efa9faa2beb4a9acb70974380122906329d0e100de36cc88ff02d)

EXTRACT="$CACHE/extracted"
rm -rf "$EXTRACT" && mkdir -p "$EXTRACT" "$CACHE/text"
for deb in "$AUSTEN" "$KJV_TEXT" "$KJV_PROG"; do dpkg-deb -x "$deb" "$EXTRACT"; done

# R's lazy-load database: Rdata.rdx (gzip) indexes Rdata.rdb, whose entries are zlib-compressed
# XDR serializations; each novel is a character vector, one element per line.
python3 - "$EXTRACT/usr/lib/R/site-library/janeaustenr/data" "$CACHE/text" <<'PY'
import gzip, os, struct, sys, zlib

src, out = sys.argv[1], sys.argv[2]

class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0
        assert self.take(2) == b"X\n", "not an XDR serialization"
        version = self.int(); self.int(); self.int()
        if version == 3:
            self.take(self.int())  # native encoding name

    def take(self, n):
        chunk = self.data[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def int(self):
        return struct.unpack(">i", self.take(4))[0]

    def item(self):
        flags = self.int()
        kind, attr, tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
        if kind in (254, 255):  # NULL, a reference to an earlier object
            return None
        if kind == 9:  # CHARSXP
            n = self.int()
            return None if n == -1 else self.take(n).decode("utf-8")
        if kind == 1:  # symbol
            return self.item()
        if kind in (10, 13, 14):  # logical, integer, double vectors
            n = self.int()
            raw = self.take((8 if kind == 14 else 4) * n)
            value = None if kind == 14 else list(struct.unpack(">%di" % n, raw))
        elif kind in (16, 19):  # character vector, list
            value = [self.item() for _ in range(self.int())]
        elif kind == 2:  # pairlist
            value = []
            while kind == 2:
                if attr:
                    self.item()
                name = self.item() if tag else None
                value.append((name, self.item()))
                flags = self.int()
                kind, attr, tag = flags & 0xFF, flags & (1 << 9), flags & (1 << 10)
            assert kind == 254, kind
            return value
        else:
            raise ValueError(f"unsupported R type {kind}")
        if attr:
            return value, dict(self.item())
        return value

index, _ = Reader(gzip.decompress(open(os.path.join(src, "Rdata.rdx"), "rb").read())).item()
variables, names = index[0]
rdb = open(os.path.join(src, "Rdata.rdb"), "rb").read()
for name, (offset, length) in zip(names["names"], variables):
    lines = Reader(zlib.decompress(rdb[offset + 4:offset + length])).item()
    if isinstance(lines, tuple):
        lines = lines[0]
    with open(os.path.join(out, name + ".txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(line or "" for line in lines) + "\n")
PY
"$EXTRACT/usr/bin/bible" -p "$EXTRACT/usr/lib" "gen1:1-rev22:21" > "$CACHE/text/kjv.txt"

# id, R name or kjv, title, author, source, sha256 of the text.
BOOKS=(
"9001|prideprejudice|Pride and Prejudice|Jane Austen|debian:r-cran-janeaustenr 1.0.0-1 (PG ebook #1342)|dfc684d4f857fa938268f9ab9c5567b64bd0691251eca959644adeabe6287a4d"
"9002|persuasion|Persuasion|Jane Austen|debian:r-cran-janeaustenr 1.0.0-1 (PG ebook #105)|8061549557aebd2fd6e353d18d9197cb707029112bd52d4d8b174583a925848a"
"9003|sensesensibility|Sense and Sensibility|Jane Austen|debian:r-cran-janeaustenr 1.0.0-1 (PG ebook #161)|105e1651fe93bed7130078578efd31e0c557d68667ba672ddc876f735b30fe09"
"9004|northangerabbey|Northanger Abbey|Jane Austen|debian:r-cran-janeaustenr 1.0.0-1 (PG ebook #121)|51f91bbe0517db8e65cff009b097ce0a1836124c4e0532ac19e6c0cad982abed"
"9005|kjv|The King James Bible|(Authorized Version, 1611)|debian:bible-kjv-text 4.38 (printed by bible-kjv 4.38)|82fa5f3788c6a9a010fb128a0f0bf588984b5888a82058520620eded59b033ea"
)

# The corpus format of ../shared/corpus. Every book is put in the `dev` split only so that
# `memmamba-train encode --split dev` takes them all; none of them is a corpus dev book.
MANIFEST="$CORPUS/MANIFEST.tsv"
printf 'id\ttitle\tauthor\tsource\tlicense\tchars\tsha256\tsplit\n' > "$MANIFEST"
rm -f "$CORPUS"/books/*.txt.zst
for row in "${BOOKS[@]}"; do
    IFS='|' read -r id name title author source want <<< "$row"
    text="$CACHE/text/$name.txt"
    got=$(sha256sum "$text" | cut -d' ' -f1)
    if [ "$got" != "$want" ]; then
        echo "$text: sha256 $got, expected $want" >&2
        exit 1
    fi
    chars=$(python3 -c 'import sys; print(len(open(sys.argv[1], encoding="utf-8").read()))' "$text")
    zstd -q -19 -f "$text" -o "$CORPUS/books/$id-$name.txt.zst"
    printf '%s\t%s\t%s\t%s\tpublic domain\t%s\t%s\tdev\n' \
        "$id" "$title" "$author" "$source" "$chars" "$got" >> "$MANIFEST"
done

if [ -n "${MEMMAMBA_TRAIN:-}" ]; then
    TRAIN=("$MEMMAMBA_TRAIN")
else
    TRAIN=(cargo run --release -q -p memmamba-train --manifest-path "$ROOT/Cargo.toml" --)
fi
"${TRAIN[@]}" encode --corpus "$CORPUS" --tokenizer "$TOKENIZER" --split dev \
    -o "$OUT/heldout.tokens"
ls -l "$OUT/heldout.tokens" "$OUT/heldout.books.json"
