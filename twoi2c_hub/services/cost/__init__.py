"""The cost service: what each person, group and profile cost, at /services/cost/."""
