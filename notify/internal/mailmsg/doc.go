// Package mailmsg builds the MIME message renewkit sends for a notification: Build turns a
// billing.Notification and its rendered notify.Message into a multipart/alternative
// (text, then HTML) UTF-8 message, with a Message-ID derived from the send-once key
// (MessageID) and the key and kind in headers (HeaderKey, HeaderKind), so a message resent
// after a dropped connection can be recognised downstream.
//
// It is internal to renewkit's notifiers: hosts reach it through smtpnotify, which sends
// the message, and lognotify, which writes the same message as an .eml file, so what a
// developer reads locally is what production sends.
package mailmsg
