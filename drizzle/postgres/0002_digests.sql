ALTER TABLE "deliveries" ADD COLUMN "digest_id" text;--> statement-breakpoint
CREATE INDEX "deliveries_digest_idx" ON "deliveries" USING btree ("digest_id");