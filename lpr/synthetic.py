"""Synthetic Brazilian plates and street scenes (Pillow), for the test camera, tests and bench.

Mercosul plates are white with the blue ``BRASIL`` band; old plates are grey with the city
line. A *pass* is a car carrying a plate that crosses the picture; *distractor* frames show
only street text (signs, phone numbers, shop names) that must never be read as a plate.
"""

from __future__ import annotations

import io
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter, ImageFont

from lpr import plates

FONT_DIRS = ("/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/dejavu")
FONT_BOLD = "DejaVuSans-Bold.ttf"
FONT_CONDENSED = "DejaVuSansCondensed-Bold.ttf"
WIDTH, HEIGHT = 1280, 720
DISTRACTOR_TEXTS = (
    "PROIBIDO ESTACIONAR",
    "TEL 9988-7766",
    "PADARIA PAO QUENTE",
    "FARMACIA 24H",
    "LOJA 123",
    "RUA XV DE NOVEMBRO",
    "AV BRASIL 1500",
    "CEP 80020-310",
    "ESCOLA MUNICIPAL",
    "PARE",
)
CITIES = ("CURITIBA - PR", "SAO PAULO - SP", "RECIFE - PE", "BELEM - PA")


def font_path(name: str = FONT_BOLD) -> str:
    """Path of a DejaVu TTF (Debian package fonts-dejavu-core)."""
    for directory in FONT_DIRS:
        path = Path(directory) / name
        if path.exists():
            return str(path)
    raise FileNotFoundError(f"{name}: install fonts-dejavu-core (scripts/install-test-deps)")


def _font(size: int, name: str = FONT_BOLD) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(font_path(name), size)


def random_plate(rng: random.Random, fmt: plates.Format) -> str:
    """A random valid plate of the format."""
    letters = "".join(rng.choice(plates.LETTERS) for _ in range(3))
    fifth = rng.choice(plates.LETTERS) if fmt == plates.MERCOSUL else rng.choice(plates.DIGITS)
    return f"{letters}{rng.choice(plates.DIGITS)}{fifth}{rng.randrange(100):02d}"


def render_plate(plate: str, width: int = 400) -> Image.Image:
    """The plate itself (aspect 40:13, like the real 400 x 130 mm plate)."""
    height = round(width * 13 / 40)
    fmt = plates.plate_format(plate)
    if fmt == plates.MERCOSUL:
        image = Image.new("RGB", (width, height), (250, 250, 250))
        draw = ImageDraw.Draw(image)
        band = round(height * 0.24)
        draw.rectangle([0, 0, width, band], fill=(0, 51, 153))
        small = _font(round(band * 0.7))
        draw.text((width / 2, band / 2), "BRASIL", font=small, fill="white", anchor="mm")
        text, top = plate, band
    else:
        image = Image.new("RGB", (width, height), (196, 198, 200))
        draw = ImageDraw.Draw(image)
        band = round(height * 0.22)
        small = _font(round(band * 0.6))
        draw.text((width / 2, band / 2 + 2), CITIES[0], font=small, fill="black", anchor="mm")
        text, top = plates.display(plate), band
    draw.rectangle([1, 1, width - 2, height - 2], outline="black", width=max(2, width // 100))
    size = round((height - top) * 0.78)
    font = _font(size, FONT_CONDENSED)
    while draw.textlength(text, font=font) > width * 0.92 and size > 8:
        size -= 2
        font = _font(size, FONT_CONDENSED)
    draw.text((width / 2, top + (height - top) / 2), text, font=font, fill="black", anchor="mm")
    return image


def _background(rng: random.Random, distractors: bool) -> Image.Image:
    image = Image.new("RGB", (WIDTH, HEIGHT), (92, 96, 100))
    draw = ImageDraw.Draw(image)
    draw.rectangle([0, 0, WIDTH, HEIGHT * 0.45], fill=(150, 160, 170))  # buildings
    for x in range(0, WIDTH, 160):
        draw.rectangle([x + 10, 30, x + 140, HEIGHT * 0.42], fill=(120 + x % 60, 110, 105))
    draw.rectangle([0, HEIGHT * 0.45, WIDTH, HEIGHT * 0.5], fill=(180, 180, 175))  # kerb
    for x in range(0, WIDTH, 120):
        draw.rectangle([x, HEIGHT * 0.8, x + 60, HEIGHT * 0.81], fill=(230, 230, 230))
    if distractors:
        for i, text in enumerate(rng.sample(DISTRACTOR_TEXTS, 3)):
            font = _font(rng.randint(26, 40))
            x, y = 40 + i * 420 + rng.randint(0, 40), rng.randint(50, 200)
            box = draw.textbbox((x, y), text, font=font)
            draw.rectangle([box[0] - 10, box[1] - 8, box[2] + 10, box[3] + 8], fill="white")
            draw.text((x, y), text, font=font, fill=(rng.randint(0, 150), 0, 0))
    return image


def _car(image: Image.Image, plate: str, cx: float, plate_width: int, color: tuple) -> None:
    draw = ImageDraw.Draw(image)
    car_w, car_h = plate_width * 3.0, plate_width * 1.7
    top = HEIGHT * 0.93 - car_h
    left = cx - car_w / 2
    draw.rounded_rectangle([left, top, left + car_w, top + car_h], radius=30, fill=color)
    draw.rectangle(
        [left + car_w * 0.15, top + car_h * 0.08, left + car_w * 0.85, top + car_h * 0.4],
        fill=(40, 50, 60),
    )
    tag = render_plate(plate, plate_width)
    image.paste(tag, (round(cx - tag.width / 2), round(top + car_h * 0.62)))


def degrade(image: Image.Image, rng: random.Random) -> Image.Image:
    """Blur, low contrast and noise: a dirty lens at dusk."""
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 1.6)))
    image = Image.blend(image, Image.new("RGB", image.size, (70, 70, 70)), rng.uniform(0.3, 0.45))
    noise = Image.effect_noise(image.size, 18).convert("RGB")
    return Image.blend(image, noise, 0.12)


@dataclass(frozen=True)
class Frame:
    image: Image.Image
    plate: str | None  # the plate in the picture, None on a distractor frame


def pass_frames(
    plate: str, *, frames: int = 10, seed: int = 0, degraded: bool = False, plate_width: int = 230
) -> Iterator[Frame]:
    """A car carrying ``plate`` crossing the picture from left to right in ``frames`` frames."""
    rng = random.Random(seed)
    background = _background(rng, distractors=True)
    color = (rng.randint(40, 220), rng.randint(40, 220), rng.randint(40, 220))
    for i in range(frames):
        image = background.copy()
        cx = WIDTH * (0.25 + 0.5 * i / max(1, frames - 1))
        _car(image, plate, cx, plate_width, color)
        yield Frame(degrade(image, rng) if degraded else image, plate)


def distractor_frames(*, frames: int = 5, seed: int = 0) -> Iterator[Frame]:
    """Street text and no vehicle."""
    rng = random.Random(seed)
    background = _background(rng, distractors=True)
    for _ in range(frames):
        yield Frame(background.copy(), None)


def jpeg(image: Image.Image, quality: int = 85) -> bytes:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=quality)
    return out.getvalue()


def write_sequence(
    directory: str | Path,
    plate_list: list[str],
    *,
    fps: int = 10,
    pass_s: float = 1.5,
    gap_s: float = 1.5,
    degraded: bool = False,
    size: tuple[int, int] | None = None,
) -> int:
    """Write the frames of one pass per plate, separated by distractor frames, as
    ``frame%05d.jpg`` in ``directory``. Returns the number of frames written."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    count = 0
    for n, plate in enumerate(plate_list):
        sequence = [
            *distractor_frames(frames=max(1, round(gap_s * fps)), seed=1000 + n),
            *pass_frames(plate, frames=max(2, round(pass_s * fps)), seed=n, degraded=degraded),
        ]
        for frame in sequence:
            image = frame.image if size is None else frame.image.resize(size)
            (directory / f"frame{count:05d}.jpg").write_bytes(jpeg(image))
            count += 1
    return count
