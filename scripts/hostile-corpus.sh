#!/usr/bin/env bash
# Fetches a corpus of real broken and hostile PDFs and EPUBs for ingest/tests/hostile.rs
# (`real_hostile_files_end_in_their_error_or_a_document`): the test files of released
# packages, at pinned URLs with pinned SHA-256, into a cache outside the repository:
#
#   qpdf 11.3.0 (Debian source, Apache-2.0): qpdf/qtest/qpdf/*.pdf, the inputs of qpdf's test
#     suite (damaged cross-reference tables and streams, loops in page trees and outlines,
#     every encryption revision, bad streams, linearization errors, ...), less the expected
#     outputs (*-out*), and fuzz/qpdf_extra/*.fuzz (inputs that OSS-Fuzz found crashing qpdf)
#   pypdf 7.1.0 (PyPI sdist, BSD-3-Clause): resources/**/*.pdf, among them encryption/ r2 to
#     r6 with empty, user and owner passwords
#   FlightCrew 0.9.3 (Debian source, LGPL-3, Sigil's EPUB validator):
#     src/FlightCrew/tests/test_data/**/*.epub, the EPUBs of its validator tests (no container,
#     missing XHTML files, a missing title, not a zip, a mimetype with wrong bytes, valid ones)
#   fast-ebook 0.2.0 (PyPI sdist, MIT): tests/fixtures/*.epub (no spine, an empty manifest, no
#     metadata, a wrong mimetype, EPUB 2 and 3, nested tables of contents)
#   pandoc 2.17.1.1 (Debian source, GPL-2+): test/epub/*.epub and test/lua/module/tiny.epub,
#     EPUBs as real tools write them (EPUB 2 and 3, covers, pictures, MathML, footnotes)
#
# The files are only read by the test, never shipped or linked.
#
#   scripts/hostile-corpus.sh          (into ${MEMREADER_HOSTILE_DIR:-~/.cache/memreader/hostile})
#
# Safe to run again: a download already there with the right hash is kept. The files land in
# DIR/files/ (named SOURCE/PATH), and DIR/files.txt lists them once all are there: the test
# reads that list, and without it (no network, a hash that changed) skips, saying so.
# Exits 1 if a download or a check failed.
set -euo pipefail

dir=${MEMREADER_HOSTILE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/memreader/hostile}
mkdir -p "$dir/downloads"
rm -f "$dir/files.txt"

# name, URL, SHA-256
sources=(
  "qpdf_11.3.0.orig.tar.gz https://deb.debian.org/debian/pool/main/q/qpdf/qpdf_11.3.0.orig.tar.gz 547cee67de77b5c4ef4917e57d2db9c848cfe3aa950361f68d36367a3a03936e"
  "pypdf-7.1.0.tar.gz https://files.pythonhosted.org/packages/60/d3/367aa9baefaededd3321cde46bbcb9f008bb51cef3a6b745608352a99534/pypdf-7.1.0.tar.gz ca3fa902369e98a6d2cb7b56396de902b72ef9bb3c1e8706c1bfc7d8bd0cf0d7"
  "flightcrew_0.9.3+dfsg.orig.tar.xz https://deb.debian.org/debian/pool/main/f/flightcrew/flightcrew_0.9.3+dfsg.orig.tar.xz 603fdafdcf759f000684b2eecd5cd0bf18482ae5d4572b4535c9d0686b4d51eb"
  "fast_ebook-0.2.0.tar.gz https://files.pythonhosted.org/packages/ec/21/4f2f849f7aa07ff56524f5834d91337dd8bde26f054f6fffeba81e34af9a/fast_ebook-0.2.0.tar.gz e234300fbe2657c257e9e8287aafda01df3f26d8a88d90bcc9264ea2190ca9f3"
  "pandoc_2.17.1.1.orig.tar.gz https://deb.debian.org/debian/pool/main/p/pandoc/pandoc_2.17.1.1.orig.tar.gz df7c6c605d084252fc28687dffe63ca57dd04a463698d323924d3be2f1f5df32"
)

for source in "${sources[@]}"; do
  read -r name url sha <<<"$source"
  file="$dir/downloads/$name"
  if [ -f "$file" ] && echo "$sha  $file" | sha256sum --check --status; then
    continue
  fi
  echo "hostile corpus: downloading $url"
  curl --fail --silent --show-error --location --retry 3 --max-time 300 -o "$file.part" "$url"
  if ! echo "$sha  $file.part" | sha256sum --check --status; then
    echo "hostile corpus: $url does not have SHA-256 $sha (got $(sha256sum "$file.part" | cut -d' ' -f1))" >&2
    rm -f "$file.part"
    exit 1
  fi
  mv "$file.part" "$file"
done

rm -rf "$dir/files" "$dir/unpacked"
mkdir -p "$dir/files/qpdf" "$dir/files/pypdf" "$dir/files/flightcrew" "$dir/files/fast-ebook" \
  "$dir/files/pandoc" "$dir/unpacked"
tar -xzf "$dir/downloads/qpdf_11.3.0.orig.tar.gz" -C "$dir/unpacked" \
  qpdf-11.3.0/qpdf/qtest/qpdf qpdf-11.3.0/fuzz/qpdf_extra qpdf-11.3.0/LICENSE.txt
tar -xzf "$dir/downloads/pypdf-7.1.0.tar.gz" -C "$dir/unpacked" \
  pypdf-7.1.0/resources pypdf-7.1.0/LICENSE
tar -xJf "$dir/downloads/flightcrew_0.9.3+dfsg.orig.tar.xz" -C "$dir/unpacked" \
  flightcrew-0.9.3/src/FlightCrew/tests/test_data flightcrew-0.9.3/COPYING.LESSER.txt
tar -xzf "$dir/downloads/fast_ebook-0.2.0.tar.gz" -C "$dir/unpacked" \
  fast_ebook-0.2.0/tests/fixtures fast_ebook-0.2.0/LICENSE
tar -xzf "$dir/downloads/pandoc_2.17.1.1.orig.tar.gz" -C "$dir/unpacked" \
  pandoc-2.17.1.1/test/epub pandoc-2.17.1.1/test/lua/module/tiny.epub pandoc-2.17.1.1/COPYING.md
# copy SOURCE ROOT PATH...: each file as DIR/files/SOURCE/PATH with its slashes made underscores
copy() {
  local source=$1 root=$2
  shift 2
  (cd "$dir/unpacked/$root" && find "$@" -print0) |
    while IFS= read -r -d '' f; do cp "$dir/unpacked/$root/$f" "$dir/files/$source/${f//\//_}"; done
}
copy qpdf qpdf-11.3.0 qpdf/qtest/qpdf -maxdepth 1 -name '*.pdf' ! -name '*-out*'
copy qpdf qpdf-11.3.0 fuzz/qpdf_extra -maxdepth 1 -name '*.fuzz'
copy pypdf pypdf-7.1.0 resources -name '*.pdf'
copy flightcrew flightcrew-0.9.3 src/FlightCrew/tests/test_data -name '*.epub'
copy fast-ebook fast_ebook-0.2.0 tests/fixtures -name '*.epub'
copy pandoc pandoc-2.17.1.1 test -name '*.epub'
cp "$dir/unpacked/qpdf-11.3.0/LICENSE.txt" "$dir/files/qpdf.LICENSE"
cp "$dir/unpacked/pypdf-7.1.0/LICENSE" "$dir/files/pypdf.LICENSE"
cp "$dir/unpacked/flightcrew-0.9.3/COPYING.LESSER.txt" "$dir/files/flightcrew.LICENSE"
cp "$dir/unpacked/fast_ebook-0.2.0/LICENSE" "$dir/files/fast-ebook.LICENSE"
cp "$dir/unpacked/pandoc-2.17.1.1/COPYING.md" "$dir/files/pandoc.LICENSE"
rm -rf "$dir/unpacked"

(cd "$dir/files" && find qpdf pypdf flightcrew fast-ebook pandoc -type f | LC_ALL=C sort) \
  >"$dir/files.txt.part"
mv "$dir/files.txt.part" "$dir/files.txt"
echo "hostile corpus: $(wc -l <"$dir/files.txt") files in $dir/files"
