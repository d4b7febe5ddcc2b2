#!/usr/bin/env bash
# Installs the colour dataset of configs/noto_emoji_colourise.py: Google's Noto Emoji images
# (Apache License 2.0) as the npm registry's emoji-datasource-google package ships them, 64x64
# RGBA PNGs, sorted into one folder per emoji category (the labels). Nothing else downloads:
# the pipeline reads data/noto-emoji/ as a `folder:` source.
#   bash scripts/install_emoji.sh [target_dir]      # default: data/noto-emoji
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=16.0.0
TARGET="${1:-data/noto-emoji}"
if [ -f "$TARGET/.complete" ]; then
  echo "$TARGET is already installed"
  exit 0
fi
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
(cd "$WORK" && npm pack --silent "emoji-datasource-google@$VERSION" > /dev/null)
tar xzf "$WORK/emoji-datasource-google-$VERSION.tgz" -C "$WORK" \
  package/emoji.json package/README.md package/LICENSE package/img/google/64
python3 - "$WORK/package" "$TARGET" <<'PY'
import json
import pathlib
import shutil
import sys

package, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
staging = target.with_name(target.name + ".partial")
shutil.rmtree(staging, ignore_errors=True)
count = 0
for emoji in json.loads((package / "emoji.json").read_text()):
    # The base image of each emoji (skin-tone variants would repeat it); "Component" holds
    # skin-tone swatches and hair parts, not pictures.
    if not emoji.get("has_img_google") or emoji["category"] == "Component":
        continue
    folder = staging / emoji["category"].replace(" & ", "_and_").replace(" ", "_")
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(package / "img/google/64" / emoji["image"], folder / emoji["image"])
    count += 1
# Hidden, so the folder source (which ignores dot-files) does not read it as an image.
(staging / ".LICENSE").write_text(
    "Noto Emoji images (https://github.com/googlefonts/noto-emoji): Apache License 2.0.\n"
    "Shipped by the npm package emoji-datasource-google (MIT for the package itself).\n"
)
shutil.rmtree(target, ignore_errors=True)
staging.rename(target)
(target / ".complete").write_text(f"{count} images\n")
print(f"{count} Noto Emoji images in {len(list(target.glob('*/')))} categories -> {target}")
PY
