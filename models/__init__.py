"""Networks and everything that turns weights into pixels."""
