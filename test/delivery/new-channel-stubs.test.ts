import { describe, expect, it } from 'vitest';
import { ChannelError } from '../../src/channels/channel';
import { FeishuBotChannel } from '../../src/channels/feishu-bot';
import { WeComRobotChannel } from '../../src/channels/wecom-robot';
import { prepareByChannel } from '../../src/delivery/inputs';
import { ValidationError } from '../../src/errors';

// Groundwork for issue 15: the channels are known everywhere, but nothing can be recorded or sent on them until each
// channel's engineer writes its input schema and its send. These tests go when they do.
describe('FEISHU and WECOM before their channels are written', () => {
  it.each(['FEISHU', 'WECOM'] as const)('%s refuses every input with a field error, so nothing is recorded', (channel) => {
    const error = (() => {
      try {
        prepareByChannel[channel]({ content: 'x' });
      } catch (thrown) {
        return thrown;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).fieldErrors).toEqual([{ path: 'input', message: `${channel} sending is not available yet` }]);
  });

  it.each([
    new FeishuBotChannel({ baseUrl: 'https://open.feishu.cn', timeoutMs: 1000 }),
    new WeComRobotChannel({ baseUrl: 'https://qyapi.weixin.qq.com', timeoutMs: 1000 }),
  ])('the $channel channel answers a permanent NOT_IMPLEMENTED', async (channel) => {
    const error = await channel
      .send({} as never, { deliveryId: 'dlv_x', attempt: 1, signal: new AbortController().signal })
      .catch((thrown: unknown) => thrown);
    expect(error).toBeInstanceOf(ChannelError);
    expect(error).toMatchObject({ kind: 'permanent', code: 'NOT_IMPLEMENTED' });
  });
});
