-- Tokens made with every channel when there were three (`--channels all`, the bootstrap token) keep every channel as
-- channels are added: their scopes now say "all" instead of listing the three.
UPDATE api_tokens SET scopes = replace(scopes, '"channels":["DING","EMAIL","SMS"]', '"channels":"all"')
WHERE scopes LIKE '{"channels":["DING","EMAIL","SMS"],%';
