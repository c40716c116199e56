#!/usr/bin/env bash
# `make run`: print a story from the default model, converting it to .quill on first use.
set -euo pipefail
bin=$1 shared=$2 model=$3 prompt=$4 n=$5
if [ -z "$model" ]; then
  src="$shared/models/stories260K/stories260K.bin"
  if [ ! -f "$src" ]; then
    echo "make run: no model given and $src is not there."
    echo "Point it at a model: make run MODEL=path/to/model.gguf (or .quill, a llama2.c .bin, or a Hugging Face directory)"
    exit 1
  fi
  model="build/stories260K.quill"
  if [ ! -f "$model" ]; then
    "$bin" convert "$src" --tokenizer "$shared/models/stories260K/tok512.bin" -o "$model"
  fi
fi
exec "$bin" run -m "$model" -p "$prompt" -n "$n" --temp 0
