"""Options shared by replace, batch and the runs commands (resolved by runflow_bg.choices)."""

from __future__ import annotations

import typer

PROMPT = typer.Option(None, "-p", "--prompt", metavar="TEXT", help="Scene description (default: the model's).")
OUT = typer.Option(None, "-o", "--out", metavar="DIR",
                   help="Where results go (created if missing; default: current directory).")
NAME = typer.Option(None, "--name", metavar="TEMPLATE",
                    help="Output names: {stem} {scene} {n} {run} {ext} (default {stem}-bg{n}.{ext}).")
OVERWRITE = typer.Option(False, "--overwrite", help="Replace existing outputs.")
TIMEOUT = typer.Option(None, "--timeout", metavar="DURATION",
                       help="How long to wait (90s, 10m, 1h; default 10m).")
POLL_INTERVAL = typer.Option(None, "--poll-interval", metavar="DURATION",
                             help="Fixed poll interval instead of the adaptive one.")
CALLBACK_URL = typer.Option(None, "--callback-url", metavar="URL",
                            help="URL Runflow POSTs to when the run finishes.")
METADATA = typer.Option([], "--metadata", metavar="KEY=VALUE",
                        help="Metadata passed to the API. Repeatable.")
JSON = typer.Option(False, "--json", help="JSON on stdout, nothing else.")
SIGNED_URLS = typer.Option(False, "--signed-urls",
                           help="In --json, output URLs with their signatures (they grant "
                                "access to the files until they expire).")
DRY_RUN = typer.Option(False, "--dry-run", help="Validate and pack, show what would be sent; no network.")
LOCAL = typer.Option(False, "--local", help="Run against the built-in emulator: offline and free.")
NO_CACHE = typer.Option(False, "--no-cache", help="Submit even if an identical request "
                        "succeeded, and fetch URL inputs afresh.")
QUIET = typer.Option(False, "-q", "--quiet", help="Only errors on stderr.")
VERBOSE = typer.Option(False, "-v", "--verbose", help="More detail on stderr.")


FORMAT = typer.Option(None, "--format", metavar="keep|jpg|png|webp",
                      help="Format of the saved files (default keep: as Runflow sends it).")
QUALITY = typer.Option(None, "--quality", metavar="N", min=1, max=100,
                       help="JPEG/WebP quality, 1-100 (default 92).")
MAX_BYTES = typer.Option(None, "--max-bytes", metavar="SIZE",
                         help="Largest file allowed (500KB, 2MB): lower quality, then size.")
FILL = typer.Option(None, "--fill", metavar="COLOR", help="Colour under transparency for JPEG.")
SIZE = typer.Option(None, "--size", metavar="WxH", help="Exact size of the saved files, with --fit.")
MAX_SIDE = typer.Option(None, "--max-side", metavar="N", min=1,
                        help="Longest side at most N px (never enlarges).")
FIT = typer.Option(None, "--fit", metavar="contain|cover|pad",
                   help="How --size is met: fit inside, fill and crop, or pad (default contain).")
PAD_COLOR = typer.Option(None, "--pad-color", metavar="COLOR", help="Colour of --fit pad borders.")
PRESET = typer.Option(None, "--preset", metavar="NAME",
                      help="Deliver for a shop: amazon, shopify, etsy, ebay, google-merchant, "
                           "woocommerce (`runflow-bg presets` lists the rules).")
NO_AI_LABEL = typer.Option(False, "--no-ai-label",
                           help="Leave out the IPTC label marking the files as AI-generated.")
SIDECAR = typer.Option(False, "--sidecar", help="Write <file>.json next to each saved file.")
KEEP_PROFILE = typer.Option(False, "--keep-profile",
                            help="Send photos with their own colour profile, not converted to sRGB.")
STRICT_INPUTS = typer.Option(False, "--strict-inputs",
                             help="Refuse (exit 4) photos whose backdrop is not plain white, or "
                                  "photo and scene that look swapped, before anything is spent.")
