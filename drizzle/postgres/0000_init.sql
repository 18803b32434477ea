CREATE TABLE "api_tokens" (
	"id" text PRIMARY KEY NOT NULL,
	"name" text NOT NULL,
	"token_hash" text NOT NULL,
	"scopes" text NOT NULL,
	"created_at" bigint NOT NULL,
	"revoked_at" bigint,
	"last_used_at" bigint
);
--> statement-breakpoint
CREATE TABLE "deliveries" (
	"id" text PRIMARY KEY NOT NULL,
	"channel" text NOT NULL,
	"status" text NOT NULL,
	"provider" text NOT NULL,
	"recipient" text NOT NULL,
	"payload" text NOT NULL,
	"sealed_secrets" text,
	"caller_id" text NOT NULL,
	"idempotency_key" text,
	"request_hash" text,
	"attempts" integer DEFAULT 0 NOT NULL,
	"last_error_code" text,
	"last_error_message" text,
	"provider_message_id" text,
	"next_attempt_at" bigint,
	"claimed_until" bigint,
	"created_at" bigint NOT NULL,
	"updated_at" bigint NOT NULL,
	"sent_at" bigint
);
--> statement-breakpoint
CREATE TABLE "delivery_attempts" (
	"id" bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY (sequence name "delivery_attempts_id_seq" INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807 START WITH 1 CACHE 1),
	"delivery_id" text NOT NULL,
	"number" integer NOT NULL,
	"channel" text NOT NULL,
	"recipient" text NOT NULL,
	"provider" text NOT NULL,
	"started_at" bigint NOT NULL,
	"duration_ms" integer NOT NULL,
	"outcome" text NOT NULL,
	"provider_code" text,
	"provider_message" text
);
--> statement-breakpoint
CREATE TABLE "gateway_settings" (
	"name" text PRIMARY KEY NOT NULL,
	"value" text NOT NULL
);
--> statement-breakpoint
CREATE TABLE "pacing_reservations" (
	"id" text PRIMARY KEY NOT NULL,
	"channel" text NOT NULL,
	"recipient" text NOT NULL,
	"reserved_at" bigint NOT NULL,
	"expires_at" bigint NOT NULL
);
--> statement-breakpoint
ALTER TABLE "delivery_attempts" ADD CONSTRAINT "delivery_attempts_delivery_id_deliveries_id_fk" FOREIGN KEY ("delivery_id") REFERENCES "public"."deliveries"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_hash_idx" ON "api_tokens" USING btree ("token_hash");--> statement-breakpoint
CREATE UNIQUE INDEX "api_tokens_name_idx" ON "api_tokens" USING btree ("name");--> statement-breakpoint
CREATE INDEX "deliveries_created_idx" ON "deliveries" USING btree ("created_at","id");--> statement-breakpoint
CREATE INDEX "deliveries_channel_created_idx" ON "deliveries" USING btree ("channel","created_at","id");--> statement-breakpoint
CREATE INDEX "deliveries_status_created_idx" ON "deliveries" USING btree ("status","created_at","id");--> statement-breakpoint
CREATE INDEX "deliveries_recipient_created_idx" ON "deliveries" USING btree ("recipient","created_at","id");--> statement-breakpoint
CREATE INDEX "deliveries_caller_created_idx" ON "deliveries" USING btree ("caller_id","created_at","id");--> statement-breakpoint
CREATE INDEX "deliveries_due_idx" ON "deliveries" USING btree ("next_attempt_at") WHERE "deliveries"."status" in ('QUEUED', 'RETRYING');--> statement-breakpoint
CREATE INDEX "deliveries_pending_recipient_idx" ON "deliveries" USING btree ("recipient","next_attempt_at") WHERE "deliveries"."status" in ('QUEUED', 'RETRYING');--> statement-breakpoint
CREATE INDEX "deliveries_claimed_idx" ON "deliveries" USING btree ("claimed_until") WHERE "deliveries"."status" = 'SENDING';--> statement-breakpoint
CREATE UNIQUE INDEX "deliveries_idempotency_idx" ON "deliveries" USING btree ("caller_id","idempotency_key");--> statement-breakpoint
CREATE UNIQUE INDEX "delivery_attempts_delivery_number_idx" ON "delivery_attempts" USING btree ("delivery_id","number");--> statement-breakpoint
CREATE INDEX "delivery_attempts_recipient_started_idx" ON "delivery_attempts" USING btree ("channel","recipient","started_at");--> statement-breakpoint
CREATE INDEX "pacing_reservations_recipient_idx" ON "pacing_reservations" USING btree ("channel","recipient");