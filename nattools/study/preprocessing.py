"""Chapter 4: preprocessing. What the fixed front end (grey-scale, Sobel) shows the network, why
colour is a shortcut (images cluster by their mean colour alone), and the trainer's augmentation.
"""
import numpy as np
import torch

from .. import data as D
from ..models import FrontEnd
from .plotting import image_grid, image_slider, png, png_sheet

VIEWS = ("RGB", "grey", "Sobel x", "Sobel y", "|gradient|")


@torch.no_grad()
def frontend_views(x) -> dict:
    """What nattools.models.FrontEnd feeds the network, as displayable [0,1] images:
    {view name: (n,3,H,W) or (n,H,W)}. Grey is min-max scaled per image; Sobel
    responses are shown signed around mid-grey, the magnitude from black."""
    grey = FrontEnd("grey")(x)[:, 0]                               # (n,H,W), normalised grey
    sob = FrontEnd("sobel")(x)                                     # (n,2,H,W)
    mag = sob.pow(2).sum(1).sqrt()

    def minmax(a):
        lo, hi = a.amin((1, 2), keepdim=True), a.amax((1, 2), keepdim=True)
        return (a - lo) / (hi - lo + 1e-8)

    def signed(a):
        s = a.abs().amax((1, 2), keepdim=True) + 1e-8
        return 0.5 + 0.5 * a / s

    return {"RGB": x, "grey": minmax(grey), "Sobel x": signed(sob[:, 0]), "Sobel y": signed(sob[:, 1]),
            "|gradient|": minmax(mag)}


def preprocessing_grid(x, labels, classes, count: int = 5):
    """Rows: images; columns: RGB, grey, Sobel x, Sobel y, gradient magnitude."""
    views = frontend_views(x[:count])
    images, titles = [], []
    for i in range(min(count, len(x))):
        for v in VIEWS:
            images.append(views[v][i])
            titles.append(f"{classes[int(labels[i])]}: {v}" if v == "RGB" else v)
    return image_grid(images, titles, cols=len(VIEWS), height_per_row=150,
                      title="What the network sees: the fixed front end (nattools.models.FrontEnd)")


def preprocessing_app(x, labels, classes, start: int = 0):
    """An ipywidgets app: pick an image (slider) and see it through every view of the front
    end. Needs a kernel to react; the static page shows its initial state."""
    import ipywidgets as W
    views = frontend_views(x)
    slider = W.IntSlider(value=start, min=0, max=len(x) - 1, description="image", continuous_update=False)
    label = W.HTML()
    tiles = {v: W.Image(format="png", width=128, height=128) for v in VIEWS}

    def show(_=None):
        i = slider.value
        label.value = f"<b>image {i}</b>: {classes[int(labels[i])]}"
        for v in VIEWS:
            tiles[v].value = png(views[v][i])

    slider.observe(show, names="value")
    show()
    boxes = [W.VBox([W.HTML(f"<div style='text-align:center'>{v}</div>"), tiles[v]]) for v in VIEWS]
    return W.VBox([W.HBox([slider, label]), W.HBox(boxes)])


def frontend_slider(x, labels, classes, count: int = 24, tile: int = 128):
    """The front end's views of `count` images, one image per step of a plotly slider: what
    `preprocessing_app` shows, but working in the static page."""
    views = frontend_views(x[:count])
    sheets = []
    for i in range(min(count, len(x))):
        tiles = [views[v][i] if views[v][i].ndim == 3 else views[v][i].expand(3, -1, -1) for v in VIEWS]
        sheets.append(png_sheet(torch.stack(tiles), cols=len(VIEWS), tile=tile))
    labels = [f"image {i} ({classes[int(labels[i])]})" for i in range(len(sheets))]
    return image_slider(sheets, labels, "The front end, image by image", prefix="image ", column_titles=VIEWS,
                        tile=tile)


def mean_colour(x) -> torch.Tensor:
    """(n,3,H,W) -> (n,3) average RGB per image."""
    return x.float().mean((2, 3))


def colour_clusters(x, labels, clusters: int = 10, seed: int = 0):
    """k-means on each image's mean colour only (3 numbers). Returns the cluster of each
    image, the purity of the clusters against the true classes, and the purity of random
    clusters of the same sizes (the chance level), both measured."""
    from sklearn.cluster import KMeans
    feats = mean_colour(x).numpy()
    km = KMeans(n_clusters=clusters, n_init=4, random_state=seed).fit(feats)
    assign = torch.as_tensor(km.labels_)

    def purity(a):
        return sum(int(torch.bincount(labels[a == j]).max()) for j in torch.unique(a)) / len(labels)

    g = torch.Generator().manual_seed(seed)
    chance = float(np.mean([purity(assign[torch.randperm(len(assign), generator=g)]) for _ in range(20)]))
    return assign, purity(assign), chance, torch.as_tensor(km.cluster_centers_)


def cluster_grid(x, assign, centres, per: int = 8, clusters: int = 4):
    """A few colour clusters (the largest first), a row of images from each."""
    sizes = torch.bincount(assign)
    order = torch.argsort(sizes, descending=True)[:clusters]
    images, titles = [], []
    for j in order.tolist():
        members = torch.nonzero(assign == j).squeeze(1)[:per]
        for m, i in enumerate(members.tolist()):
            images.append(x[i])
            titles.append(f"cluster {j}: {int(sizes[j])}" if m == 0 else "")
        images += [torch.ones(3, 4, 4) for _ in range(per - len(members))]
        titles += [""] * (per - len(members))
    return image_grid(images, titles, cols=per, title="Colour clusters: k-means on the mean colour alone")


def colour_r2(z, x) -> float:
    """Share of the variance of embeddings z (n,d) explained linearly by the images' mean
    colour (3 numbers + bias): 1 = the embedding is a function of colour, 0 = unrelated."""
    feats = torch.cat([mean_colour(x), torch.ones(len(x), 1)], 1).double()
    z = z.double()
    coef = torch.linalg.lstsq(feats, z).solution
    resid = z - feats @ coef
    return float(1 - resid.pow(2).sum() / (z - z.mean(0)).pow(2).sum())


def augmentations(pil_image, count: int = 8, size: int = 32, crop_min: float = 0.5, seed: int = 0):
    """`count` draws of the trainer's augmentation (nattools.data.augment: random resized
    crop + horizontal flip) of one image, seeded. -> list of (3,size,size) tensors."""
    stored = D.stored_transform(size)(pil_image)                    # (3,L,L) uint8, as the trainer stores it
    g = torch.Generator().manual_seed(seed)
    return list(D.augment(stored.unsqueeze(0).repeat(count, 1, 1, 1), size, crop_min, generator=g))


def augmentation_grid(base, classes, images: int = 3, views: int = 7, size: int = 32, crop_min: float = 0.5,
                      seed: int = 1, title: str = "Three training images (left) and seven random crops and flips of each"):
    """`images` images of a dataset of (PIL image, label), drawn with a fixed seed, each as the
    eval transform shows it followed by `views` draws of the trainer's augmentation, one row each."""
    picks = torch.randperm(len(base), generator=torch.Generator().manual_seed(seed))[:images].tolist()
    tiles, titles = [], []
    for i in picks:
        pil, label = base[i]
        crops = augmentations(pil, count=views, size=size, crop_min=crop_min, seed=i)
        tiles += [D.eval_transform(size)(pil)] + crops
        titles += [classes[label]] + [f"crop {k + 1}" for k in range(len(crops))]
    return image_grid(tiles, titles, cols=views + 1, title=title)
