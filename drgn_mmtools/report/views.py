"""Draw an :class:`~.output.Output` on a terminal with rich: a table, one
detail block per record, or a tree.

Every value from the dump goes through :func:`~.safe.printable` into a
``Text`` (never markup: ``[heap]`` stays ``[heap]``), and address columns
never wrap or shrink.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .output import Output, record_dict
from .safe import printable

__all__ = ("render", "format_value")

LIST_ITEMS = 16
#: Columns that may wrap; every other column keeps its values whole.
WRAPPING = {"summary", "file", "bits", "flags", "waiters", "mapped_by", "decoded", "note",
            "slots", "marks", "stuck", "title", "fields", "error", "unreadable", "vm_ops",
            "fault", "page_mkwrite", "path"}
#: Keys of nested dicts (finding evidence) shown in hexadecimal.
HEX_KEYS = {"address", "pfn", "head_pfn", "vma_start", "vma_end", "vma_flags", "page_mapping",
            "user_pc", "value", "entry", "mapping", "phys", "xa", "inode_address", "page"}


def _meta(record: Any) -> dict[str, dict]:
    if dataclasses.is_dataclass(record):
        return {f.name: dict(f.metadata) for f in dataclasses.fields(record)}
    return {}


def format_value(value: Any, fmt: str = "") -> str:
    """One value as text: hex where ``fmt`` says so, ``-`` for None, lists
    comma-separated (at most 16 items), dicts as ``k=v``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return hex(value) if fmt == "hex" else str(value)
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v, 'hex' if k in HEX_KEYS else '')}"
                         for k, v in value.items() if v is not None)
    if isinstance(value, (list, tuple)) and value and isinstance(value[0], dict):
        return "; ".join(format_value(v, fmt) for v in value[:LIST_ITEMS]) + (
            f"; ... {len(value) - LIST_ITEMS} more" if len(value) > LIST_ITEMS else "")
    if isinstance(value, (list, tuple)):
        items = [format_value(v, fmt) for v in value[:LIST_ITEMS]]
        more = f", ... {len(value) - LIST_ITEMS} more" if len(value) > LIST_ITEMS else ""
        return ", ".join(items) + more
    return str(value)


def _columns(output: Output) -> list[tuple[str, str]]:
    if not output.records:
        return []
    meta = _meta(output.records[0])
    names = list(record_dict(output.records[0]))
    return [(n, meta.get(n, {}).get("fmt", "")) for n in names
            if not meta.get(n, {}).get("detail") and n != "depth"]


def render(console: Any, output: Output) -> None:
    """Print ``output`` on a rich console."""
    from rich.table import Table
    from rich.text import Text
    from rich.tree import Tree

    def text(value: Any, style: str = "") -> Text:
        return Text(printable(value), style=style)

    if output.title:
        console.print(text(output.title, "bold"))
    if output.layout == "detail":
        for record in output.records:
            meta = _meta(record)
            grid = Table.grid(padding=(0, 2))
            grid.add_column(style="cyan", no_wrap=True)
            grid.add_column(overflow="fold")
            for key, value in record_dict(record).items():
                if isinstance(value, dict) and value:
                    grid.add_row(text(key, "cyan"), text(""))
                    for k, v in value.items():
                        grid.add_row(text(f"  {k}", "cyan"),
                                     text(format_value(v, "hex" if k in HEX_KEYS else "")))
                    continue
                grid.add_row(text(key, "cyan"),
                             text(format_value(value, meta.get(key, {}).get("fmt", ""))))
            console.print(grid)
            if len(output.records) > 1:
                console.print()
    elif output.layout == "tree" and output.records:
        cols = _columns(output)
        root = Tree(text(output.kind, "bold"))
        stack: list[tuple[int, Any]] = [(-1, root)]
        for record in output.records:
            d = record_dict(record)
            depth = d.get("depth", 0)
            while stack and stack[-1][0] >= depth:
                stack.pop()
            label = "  ".join(f"{k}={format_value(d[k], f)}" for k, f in cols if d[k] is not None)
            node = stack[-1][1].add(text(label))
            stack.append((depth, node))
        console.print(root)
    elif output.records:
        cols = _columns(output)
        rows = [[printable(format_value(record_dict(r)[name], fmt)) for name, fmt in cols]
                for r in output.records]
        table = Table(show_edge=False, pad_edge=False, box=None, header_style="bold")
        needed = 0
        for i, (name, fmt) in enumerate(cols):
            numeric = fmt == "hex" or isinstance(record_dict(output.records[0])[name], int)
            whole = name not in WRAPPING
            # Columns that do not wrap keep their widest value: an address is
            # never cut, the table grows past the screen instead.
            width = max([len(name), *(len(row[i]) for row in rows)]) if whole else None
            needed += (width or min(24, max([len(name), *(len(row[i]) for row in rows)]))) + 2
            table.add_column(name, no_wrap=whole, overflow="fold", min_width=width,
                             justify="right" if numeric and fmt != "hex" else "left")
        for row in rows:
            table.add_row(*(Text(cell) for cell in row))
        width = console.width
        if needed > width:
            console.width = needed  # wider than the screen, rather than cut an address
        try:
            console.print(table, crop=False)
        finally:
            console.width = width
    else:
        console.print(text(f"no {output.kind} records", "dim"))
    for note in output.notes:
        console.print(text(f"note: {note}", "dim"))
    for what in output.unreadable:
        console.print(text(f"unreadable: {what}", "yellow"))
