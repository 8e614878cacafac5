"""``chatkeep serve``: a local web page over a store, another face of the library calls the CLI makes.

- :mod:`.app`: the settings (``WebConfig``), the templates, and ``create_app``;
- :mod:`.security`: the guard in front of every request (Host, token, CSRF, headers);
- :mod:`.routes`: the pages, fragments and actions;
- :mod:`.views`: what each page reads from the store (a window of a branch, a page of the sidebar);
- :mod:`.messages` and :mod:`.markdown`: stored messages as safe HTML;
- :mod:`.turns`: turns taken from the page, streamed as server-sent events.

Nothing here is imported unless ``chatkeep serve`` runs (it needs ``pip install 'chatkeep[web]'``).
"""
