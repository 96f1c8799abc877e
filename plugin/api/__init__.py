"""The JSON APIs: merchant (admin), customer portal and agent."""
