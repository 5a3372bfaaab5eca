"""Result records: the format (schema.py), its migrations (migrate.py), writing and reading run folders
(store.py) and loading them into one tidy frame (load.py)."""
