"""The report: figures (figures.py, matplotlib without pyplot), the page's sections (sections.py, page.py)
and the page itself (html.py). It renders what it is given and computes nothing new."""
