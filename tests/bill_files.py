"""Cloud bills as the clouds export them (tests/data/bills), and a community config to
import them with."""

from pathlib import Path

# the columns of the two exports (a few lines each, the columns we read and some we do not)
BILLS = Path(__file__).parent / "data" / "bills"
AWS = (BILLS / "aws-cur.csv").read_text()
GCP = (BILLS / "gcp-billing-export.csv").read_text()


def bill_config(tmp_path: Path) -> Path:
    """A community config whose prices are in USD, its accounting database in `tmp_path`."""
    config = tmp_path / "community.yaml"
    config.write_text(
        "hub: {name: H}\nprofiles: [{display_name: A, kubespawner_override: {cpu_guarantee: 1}}]\n"
        f"usage: {{database_url: 'sqlite:///{tmp_path / 'usage.sqlite'}'}}\n"
        "pricing: {prices: [{effective: 2026-01-01, cpu_core_hour: 0.03}]}\n"
    )
    return config
