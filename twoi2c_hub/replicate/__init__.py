"""Right to Replicate: a whole hub's history out as one archive and into another install
(archive, restore), a person forgotten (forget), and an existing zero-to-jupyterhub hub's
values brought in as a community config (convert)."""
