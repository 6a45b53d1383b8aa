"""The book's wing: what the chapters run and draw, beside the NAT core and leaning on it.

The core (the modules directly in `nattools/`) is the method; this package holds the studies of
the book: the page setup and the drawing basics (`plotting`, whose `setup()` each chapter calls
once), the small live experiments of chapters 1-4 (`objective`, `assignment`, `preprocessing`),
live training on a page (`training`), the run files and their tables (`runs`), each run's margin
over its own random init (`margins`), what a trained network learned (`filters`, `neighbours`,
`coverage`), two networks compared image by image (`paired`: McNemar's test), what the results
files say in words, the "What we found" boxes (`findings`), and every chapter's first cell, which
installs the library and fetches data/ where they are missing (`launch`). plotly and ipywidgets
are used only here. Nothing in the core imports this package.
"""
