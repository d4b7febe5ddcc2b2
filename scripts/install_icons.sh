#!/usr/bin/env bash
# Installs the icon dataset of configs/icons.py: KDE's Oxygen icon theme (LGPL-3+) as Debian's
# oxygen-icon-theme package ships it, colour PNG icons sorted into one folder per icon context
# (the labels: actions, apps, devices, mimetypes, places, status). Installs the package when
# it is absent; the pipeline then reads data/oxygen-icons/ as a `folder:` source.
#   bash scripts/install_icons.sh [target_dir]      # default: data/oxygen-icons
set -euo pipefail
cd "$(dirname "$0")/.."
PACKAGE=oxygen-icon-theme
THEME=/usr/share/icons/oxygen/base
TARGET="${1:-data/oxygen-icons}"
if [ -f "$TARGET/.complete" ]; then
  echo "$TARGET is already installed"
  exit 0
fi
if ! dpkg-query -W -f='${Status}' "$PACKAGE" 2> /dev/null | grep -q "ok installed"; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "$PACKAGE"
fi
VERSION="$(dpkg-query -W -f='${Version}' "$PACKAGE")"
python3 - "$THEME" "$TARGET" "$PACKAGE" "$VERSION" <<'PY'
import collections
import hashlib
import os
import pathlib
import shutil
import struct
import sys

theme, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
package, version = sys.argv[3], sys.argv[4]
# One size per icon: the largest of 64, 48 and 32 px it comes in (downscaled to 32 by the
# pipeline); an icon drawn only larger (e.g. the Plasma applets, 256 px only) takes its
# smallest size. 8-22 px renderings are too small, and would repeat the icon anyway.
SIZES = (64, 48, 32, 128, 256)
# Contexts of too few icons for a class of their own (< 50) join the nearest big one: menu
# categories and Plasma applets are application icons; emblems (badges) and emotes (chat
# faces) are small indicators like status. "animations" holds sprite strips, not icons.
MERGE = {"categories": "apps", "applets": "apps", "emblems": "status", "emotes": "status"}
DROP = {"animations"}


def png_size(data):
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        return None
    return struct.unpack(">II", data[16:24])


files = {}  # (context, name) -> {size: path of the file it resolves to}
for size in SIZES:
    for path in sorted((theme / f"{size}x{size}").glob("*/*.png")):
        context = path.parent.name
        # Monochrome symbolic icons (Oxygen has none; its emblem-symbolic-link is a colour
        # badge for symlinks, so only the -symbolic suffix and a symbolic/ folder count).
        if context in DROP or context == "symbolic" or path.stem.endswith("-symbolic"):
            continue
        real = pathlib.Path(os.path.realpath(path))
        if real.is_file():  # not a symlink dangling into a package that is not installed
            files.setdefault((context, path.stem), {})[size] = real

# Symlinks alias one drawing under several names and contexts, at some sizes only: names
# that share a file (or its bytes) at any size are one icon, copied once.
parent = {key: key for key in files}


def find(key):
    while parent[key] != key:
        parent[key] = key = parent[parent[key]]
    return key


owner = {}
for key, by_size in files.items():
    for real in by_size.values():
        for fingerprint in (real, hashlib.sha256(real.read_bytes()).digest()):
            other = owner.setdefault(fingerprint, key)
            parent[find(key)] = find(other)
groups = collections.defaultdict(list)
for key in sorted(files):
    groups[find(key)].append(key)

staging = target.with_name(target.name + ".partial")
shutil.rmtree(staging, ignore_errors=True)
counts, skipped = collections.Counter(), collections.Counter()
for keys in groups.values():
    skipped["alias of another icon"] += len(keys) - 1
    # The preferred size that is really there (a few files hold another size than their
    # folder's, e.g. 22 px in 48x48).
    chosen = next(
        (
            (key, files[key][size])
            for size in SIZES
            for key in keys
            if size in files[key] and png_size(files[key][size].read_bytes()) == (size, size)
        ),
        None,
    )
    if chosen is None:
        skipped["no square PNG of its folder's size"] += 1
        continue
    (context, name), real = chosen
    if real.parent.parent.parent == theme:  # the drawing's own context, not an alias's
        context, name = real.parent.name, real.stem
    if context in DROP:
        skipped[context] += 1
        continue
    label = MERGE.get(context, context)
    folder = staging / label
    folder.mkdir(parents=True, exist_ok=True)
    # The context prefix keeps a merged context's icon from overwriting a same-named one.
    shutil.copyfile(real, folder / f"{context}-{name}.png")
    counts[label] += 1
count = sum(counts.values())
# Hidden, so the folder source (which ignores dot-files) does not read it as an image.
(staging / ".LICENSE").write_text(
    f"Oxygen icon theme (https://invent.kde.org/frameworks/oxygen-icons5), from the Debian\n"
    f"package {package} {version}: GNU Lesser General Public License, version 3 or (at your\n"
    f"option) any later version (LGPL-3+; /usr/share/common-licenses/LGPL-3).\n"
    f"Copyright 2007 David Miller, David Vignoni, Johann Ollivier Lapeyre, Kenneth Wimer,\n"
    f"Nuno Pinheiro, Riccardo Iaconelli, Free Software Foundation, Inc.\n"
    f"(see /usr/share/doc/{package}/copyright).\n"
    f"Selection: one PNG (64, 48 or 32 px) per distinct icon, folders = icon contexts.\n"
)
shutil.rmtree(target, ignore_errors=True)
staging.rename(target)
(target / ".complete").write_text(f"{count} images from {package} {version}\n")
print(", ".join(f"{label} {n}" for label, n in counts.most_common()))
print("skipped: " + ", ".join(f"{n} {why}" for why, n in skipped.most_common()))
print(f"{count} Oxygen icons in {len(counts)} context folders -> {target}")
PY
