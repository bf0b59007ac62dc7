"""Draws the module and extension icon: a thigh cross-section in the class colours.

Run: python Resources/make_icon.py (writes Resources/Icons/ThighMuscleSeg.png and the
module's copy). Kept as code so the picture follows the class table's colours.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Circle, Ellipse, Wedge  # noqa: E402

from ThighMuscleSegLib import classes as C  # noqa: E402

HERE = Path(__file__).resolve().parent


def draw(path: Path, size_px: int = 128) -> None:
    fig = plt.figure(figsize=(1, 1), dpi=size_px)
    ax = fig.add_axes([0, 0, 1, 1])
    ax.set_xlim(-1.05, 1.05)
    ax.set_ylim(-1.05, 1.05)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.add_patch(Ellipse((0, 0), 2.0, 1.85, color="#f3d9b1"))  # skin and fat
    ax.add_patch(Ellipse((0, 0), 1.72, 1.58, color="#e8c48f"))
    angle = 90.0
    span = 360.0 / len(C.CLASSES)
    for muscle in C.CLASSES:  # one wedge per class, in table order
        ax.add_patch(Wedge((0, 0), 0.8, angle, angle + span - 3, width=0.5,
                           color=[v / 255 for v in muscle.color]))
        angle += span
    ax.add_patch(Circle((0, 0), 0.24, color="white", ec="#999999", lw=1.2))  # femur
    ax.add_patch(Circle((0, 0), 0.12, color="#d9c27a"))  # marrow
    fig.savefig(path, transparent=True)
    plt.close(fig)


if __name__ == "__main__":
    for target in (HERE / "Icons" / "ThighMuscleSeg.png",
                   HERE.parent / "ThighMuscleSeg" / "Resources" / "Icons" / "ThighMuscleSeg.png"):
        target.parent.mkdir(parents=True, exist_ok=True)
        draw(target)
        print(f"wrote {target}")
