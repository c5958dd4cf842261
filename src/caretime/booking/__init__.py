"""Booking: providers publish availability, patients hold and confirm 15-minute slots."""
