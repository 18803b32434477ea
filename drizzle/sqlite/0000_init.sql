CREATE TABLE `api_tokens` (
	`id` text PRIMARY KEY NOT NULL,
	`name` text NOT NULL,
	`token_hash` text NOT NULL,
	`scopes` text NOT NULL,
	`created_at` integer NOT NULL,
	`revoked_at` integer,
	`last_used_at` integer
);
--> statement-breakpoint
CREATE UNIQUE INDEX `api_tokens_hash_idx` ON `api_tokens` (`token_hash`);--> statement-breakpoint
CREATE UNIQUE INDEX `api_tokens_name_idx` ON `api_tokens` (`name`);--> statement-breakpoint
CREATE TABLE `deliveries` (
	`id` text PRIMARY KEY NOT NULL,
	`channel` text NOT NULL,
	`status` text NOT NULL,
	`provider` text NOT NULL,
	`recipient` text NOT NULL,
	`payload` text NOT NULL,
	`sealed_secrets` text,
	`caller_id` text NOT NULL,
	`idempotency_key` text,
	`request_hash` text,
	`attempts` integer DEFAULT 0 NOT NULL,
	`last_error_code` text,
	`last_error_message` text,
	`provider_message_id` text,
	`next_attempt_at` integer,
	`claimed_until` integer,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	`sent_at` integer
);
--> statement-breakpoint
CREATE INDEX `deliveries_created_idx` ON `deliveries` (`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_channel_created_idx` ON `deliveries` (`channel`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_status_created_idx` ON `deliveries` (`status`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_recipient_created_idx` ON `deliveries` (`recipient`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_caller_created_idx` ON `deliveries` (`caller_id`,`created_at`,`id`);--> statement-breakpoint
CREATE INDEX `deliveries_due_idx` ON `deliveries` (`next_attempt_at`) WHERE "deliveries"."status" in ('QUEUED', 'RETRYING');--> statement-breakpoint
CREATE INDEX `deliveries_claimed_idx` ON `deliveries` (`claimed_until`) WHERE "deliveries"."status" = 'SENDING';--> statement-breakpoint
CREATE UNIQUE INDEX `deliveries_idempotency_idx` ON `deliveries` (`caller_id`,`idempotency_key`);--> statement-breakpoint
CREATE TABLE `delivery_attempts` (
	`id` integer PRIMARY KEY AUTOINCREMENT NOT NULL,
	`delivery_id` text NOT NULL,
	`number` integer NOT NULL,
	`channel` text NOT NULL,
	`recipient` text NOT NULL,
	`provider` text NOT NULL,
	`started_at` integer NOT NULL,
	`duration_ms` integer NOT NULL,
	`outcome` text NOT NULL,
	`provider_code` text,
	`provider_message` text,
	FOREIGN KEY (`delivery_id`) REFERENCES `deliveries`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `delivery_attempts_delivery_number_idx` ON `delivery_attempts` (`delivery_id`,`number`);--> statement-breakpoint
CREATE INDEX `delivery_attempts_recipient_started_idx` ON `delivery_attempts` (`channel`,`recipient`,`started_at`);