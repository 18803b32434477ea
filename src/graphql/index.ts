import './types/scalars';
import './types/errors';
import './types/delivery';
import './types/send-ding';
import './types/send-email';
import './types/send-sms';
import './types/deliveries-query';
import './types/manage-delivery';
