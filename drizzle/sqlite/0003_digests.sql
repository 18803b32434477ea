ALTER TABLE `deliveries` ADD `digest_id` text;--> statement-breakpoint
CREATE INDEX `deliveries_digest_idx` ON `deliveries` (`digest_id`);