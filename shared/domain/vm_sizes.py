"""The catalogue of Azure VM sizes a cluster can use: vCPUs, memory, GPUs, quota family, list prices and the
regions that offer each size.

The data ships with the package (``shared/domain/data/vm_sizes.json``; its ``source`` field says where the
figures come from). Lookups follow Azure: VM size names are case-insensitive (``STANDARD_D2_V2`` is
``Standard_D2_v2``), location names are compared without case or spaces (``East US`` is ``eastus``).
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final, Literal

from shared.domain.errors import InvalidField

VmPriority = Literal["dedicated", "lowpriority"]
DEDICATED: Final = "dedicated"
LOW_PRIORITY: Final = "lowpriority"

_CATALOGUE_PACKAGE: Final = "shared.domain"
_CATALOGUE_DIRECTORY: Final = "data"
_CATALOGUE_FILE: Final = "vm_sizes.json"
_CLOSE_NAMES_SHOWN: Final = 3


def normalize_location(location: str) -> str:
    """Azure's short region name: ``East US`` -> ``eastus``."""
    return location.replace(" ", "").lower()


@dataclass(frozen=True)
class VmSize:
    """One Azure VM size. Prices are USD per hour in the catalogue's reference region (eastus)."""

    name: str
    family: str
    vcpus: int
    memory_gb: float
    gpus: int
    gpu_model: str | None
    price_per_hour_dedicated: float
    price_per_hour_low_priority: float
    locations: tuple[str, ...]

    @property
    def has_gpus(self) -> bool:
        return self.gpus > 0

    def offered_in(self, location: str) -> bool:
        return normalize_location(location) in self.locations

    def price_per_hour(self, priority: str) -> float:
        return self.price_per_hour_low_priority if priority == LOW_PRIORITY else self.price_per_hour_dedicated


VmSizeList = list[VmSize]  # an alias, because the method ``VmCatalogue.list`` hides the builtin in the class body


class VmCatalogue:
    """VM sizes by name, with the regions that offer them."""

    def __init__(self, sizes: Iterable[VmSize], regions: Iterable[str]) -> None:
        self._by_lower_name: dict[str, VmSize] = {}
        for size in sizes:
            key = size.name.lower()
            if key in self._by_lower_name:
                raise ValueError(f"VM size {size.name} is listed twice")
            self._by_lower_name[key] = size
        self.regions: tuple[str, ...] = tuple(normalize_location(r) for r in regions)

    def __len__(self) -> int:
        return len(self._by_lower_name)

    def families(self) -> frozenset[str]:
        return frozenset(size.family for size in self._by_lower_name.values())

    def get(self, name: str, location: str | None = None) -> VmSize:
        """The size called ``name`` (any case), offered in ``location`` when one is given.

        Raises ``InvalidField("vm_size", ...)`` for an unknown size or one the location does not offer, and
        ``InvalidField("location", ...)`` for a region the catalogue does not know.
        """
        size = self._by_lower_name.get(name.lower())
        if size is None:
            raise InvalidField("vm_size", self._unknown_size_rule(name))
        if location is None:
            return size
        region = normalize_location(location)
        if region not in self.regions:
            raise InvalidField("location", f"unknown location '{location}'; known locations: {', '.join(self.regions)}")
        if not size.offered_in(region):
            raise InvalidField("vm_size", self._not_offered_rule(size, region))
        return size

    def list(self, location: str | None = None) -> VmSizeList:
        """All sizes, or those offered in ``location``, ordered by family, then vCPUs, then name."""
        sizes = [s for s in self._by_lower_name.values() if location is None or s.offered_in(location)]
        return sorted(sizes, key=lambda s: (s.family.lower(), s.vcpus, s.name.lower()))

    def _unknown_size_rule(self, name: str) -> str:
        close = self._close_names(name, self._by_lower_name.values())
        hint = f"; did you mean {', '.join(close)}?" if close else "; see the list of supported VM sizes"
        return f"unknown VM size '{name}'{hint}"

    def _not_offered_rule(self, size: VmSize, region: str) -> str:
        offered = self.list(region)
        alternatives = self._close_names(size.name, (s for s in offered if s.family == size.family))
        if not alternatives:
            alternatives = self._close_names(size.name, (s for s in offered if s.has_gpus == size.has_gpus))
        hint = f"; sizes offered there: {', '.join(alternatives)}" if alternatives else ""
        return (f"VM size '{size.name}' is not offered in location '{region}' "
                f"(offered in: {', '.join(size.locations)}){hint}")

    @staticmethod
    def _close_names(name: str, candidates: Iterable[VmSize]) -> tuple[str, ...]:
        by_lower = {s.name.lower(): s.name for s in candidates}
        matches = difflib.get_close_matches(name.lower(), by_lower.keys(), n=_CLOSE_NAMES_SHOWN, cutoff=0.6)
        return tuple(by_lower[m] for m in matches)


def parse_catalogue(document: Mapping[str, Any]) -> VmCatalogue:
    """Build a catalogue from the JSON document's structure (see ``data/vm_sizes.json``)."""
    sizes = [_parse_size(raw) for raw in document["sizes"]]
    return VmCatalogue(sizes, document["regions"])


def _parse_size(raw: Mapping[str, Any]) -> VmSize:
    gpu_model = raw.get("gpu_model")
    return VmSize(
        name=str(raw["name"]),
        family=str(raw["family"]),
        vcpus=int(raw["vcpus"]),
        memory_gb=float(raw["memory_gb"]),
        gpus=int(raw["gpus"]),
        gpu_model=None if gpu_model is None else str(gpu_model),
        price_per_hour_dedicated=float(raw["price_per_hour_dedicated"]),
        price_per_hour_low_priority=float(raw["price_per_hour_low_priority"]),
        locations=tuple(normalize_location(str(loc)) for loc in raw["locations"]),
    )


@cache
def load_catalogue() -> VmCatalogue:
    """The catalogue shipped with the package, read once."""
    resource = resources.files(_CATALOGUE_PACKAGE) / _CATALOGUE_DIRECTORY / _CATALOGUE_FILE
    return parse_catalogue(json.loads(resource.read_text(encoding="utf-8")))
