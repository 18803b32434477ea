CREATE TABLE `gateway_settings` (
	`name` text PRIMARY KEY NOT NULL,
	`value` text NOT NULL
);
--> statement-breakpoint
CREATE TABLE `pacing_reservations` (
	`id` text PRIMARY KEY NOT NULL,
	`channel` text NOT NULL,
	`recipient` text NOT NULL,
	`reserved_at` integer NOT NULL,
	`expires_at` integer NOT NULL
);
--> statement-breakpoint
CREATE INDEX `pacing_reservations_recipient_idx` ON `pacing_reservations` (`channel`,`recipient`);--> statement-breakpoint
CREATE INDEX `deliveries_pending_recipient_idx` ON `deliveries` (`recipient`,`next_attempt_at`) WHERE "deliveries"."status" in ('QUEUED', 'RETRYING');