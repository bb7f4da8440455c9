"""The console's forms (Flask-WTF: each carries its CSRF token)."""
from __future__ import annotations

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import PasswordField, StringField, SubmitField, TextAreaField
from wtforms.validators import AnyOf, DataRequired, Length, Optional

# Choices are plain strings checked with AnyOf (or in the view, against the live rules); the pages
# render their own <select>s, so WTForms' SelectField (and its changing choices API) is not needed.
OUTCOMES = (
    ("reached", "Reached the citizen: resolved"),
    ("left_message", "Left a message"),
    ("no_answer", "No answer (retry later)"),
    ("busy", "Busy (retry later)"),
    ("wrong_number", "Wrong number"),
)


class LoginForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=1024)])
    submit = SubmitField("Sign in")


class FeedbackForm(FlaskForm):
    correct_department = StringField("Correct department", validators=[DataRequired(), Length(max=64)])
    note = StringField("Note (optional)", validators=[Optional(), Length(max=500)])
    submit = SubmitField("Save: wrong department")


class RightForm(FlaskForm):
    submit = SubmitField("Routing was right")


class RulesForm(FlaskForm):
    rules = TextAreaField("routing_rules.yaml", validators=[DataRequired()])
    note = StringField("What changed (for the history)", validators=[Optional(), Length(max=255)])
    submit = SubmitField("Check and save")


class PromptsForm(FlaskForm):
    prompts = TextAreaField("Prompts", validators=[DataRequired()])
    note = StringField("What changed (for the history)", validators=[Optional(), Length(max=255)])
    submit = SubmitField("Check and save")


class TryForm(FlaskForm):
    sentence = StringField("Sentence", validators=[Optional(), Length(max=500)])
    language = StringField("Language", validators=[Optional(), Length(max=16)])
    audio = FileField("or a WAV recording")
    submit = SubmitField("Try it")


class ActionForm(FlaskForm):
    """A bare form: a button with its CSRF token (claim, roll back, call back …)."""
    submit = SubmitField("Go")


class OutcomeForm(FlaskForm):
    outcome = StringField("Outcome", validators=[DataRequired(), AnyOf([value for value, _ in OUTCOMES])])
    note = StringField("Note", validators=[Optional(), Length(max=500)])
    submit = SubmitField("Record outcome")


class StatusForm(FlaskForm):
    """Acknowledge, close or reopen a service request, with a note (the public status notes)."""
    status = StringField("Status", validators=[DataRequired(), AnyOf(["open", "acknowledged", "closed"])])
    note = TextAreaField("Note", validators=[Optional(), Length(max=1000)])
    submit = SubmitField("Save")
