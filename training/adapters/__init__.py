"""What happens to a trained adapter: publish (checks, card, registry), blend (weighted combinations)
and jobs (the runner for blends the owner queues from a chat)."""
